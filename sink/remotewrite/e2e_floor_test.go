package remotewrite_test

import (
	"bytes"
	"cmp"
	"context"
	"io"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferrydev/ferry/httpconf"
	"github.com/ferrydev/ferry/internal/httpclient"
	"github.com/ferrydev/ferry/scrape"
	"github.com/ferrydev/ferry/sink/remotewrite"
)

// fetchEnv makes the re-executed child the agent "fetch" of
// FERRY_E2E_AGENTS: the network part of the benchmark's work and nothing
// else, to put a figure on what the limit leaves out. It fetches each
// target every FERRY_E2E_INTERVAL as the Scraper does (its phases in the
// Scraper's windows, FERRY_E2E_GROUP or DefaultGroup; the Scraper's HTTP
// client, the gzip page read into a reused buffer, nothing decompressed or
// parsed), and for every DefaultMaxSamplesPerSend samples the pages held (a
// page's series and the Scraper's five report series) it posts a prepared
// remote-write request of that many samples, as the sink would, with the
// sink's HTTP client. Its CPU time for the same samples is a floor under
// any agent's on this machine: the kernel's work for the connections, Go's
// HTTP client and server framing, and the scheduling of a goroutine a
// target.
const fetchEnv = "FERRY_E2E_FETCH_ONLY"

// runFetchFloor is the child's work when fetchEnv is set.
func runFetchFloor(t *testing.T, addrs []string, url string, d time.Duration) {
	page, err := os.ReadFile("../../scrape/testdata/node_exporter.txt")
	if err != nil {
		t.Fatal(err)
	}
	one, err := remotewrite.TargetSamples(page, 1)
	if err != nil {
		t.Fatal(err)
	}
	per := len(one) + 5 // the report series
	samples, err := remotewrite.TargetSamples(page, remotewrite.DefaultMaxSamplesPerSend/len(one)+1)
	if err != nil {
		t.Fatal(err)
	}
	var enc remotewrite.TestEncoder
	body := bytes.Clone(enc.Compress(enc.EncodeV1(samples[:remotewrite.DefaultMaxSamplesPerSend])))

	// The clients as the Scraper and the sink build theirs.
	get, err := httpclient.New(httpconf.Config{}, httpclient.Options{Transport: httpclient.SmallGETs})
	if err != nil {
		t.Fatal(err)
	}
	post, err := httpclient.New(httpconf.Config{}, httpclient.Options{})
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	// The targets' phases, in windows as the Scraper's Group puts them.
	group, interval := cmp.Or(groupEnv(), scrape.DefaultGroup), intervalEnv()
	var held atomic.Int64 // samples fetched and not yet posted
	due := make(chan struct{}, 1)
	var wg sync.WaitGroup
	for i, a := range addrs {
		wg.Go(func() {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+a+"/metrics", nil)
			req.Header.Set("Accept-Encoding", "gzip")
			var buf bytes.Buffer
			// Spread over the interval in windows, as the Scraper
			// spreads its targets.
			phase := time.Duration(i) * interval / time.Duration(len(addrs))
			select {
			case <-time.After(phase - phase%group):
			case <-ctx.Done():
				return
			}
			tick := time.NewTicker(interval)
			defer tick.Stop()
			for {
				resp, err := get.Do(req)
				if err == nil {
					buf.Reset()
					_, err = buf.ReadFrom(resp.Body)
					resp.Body.Close()
				}
				if err == nil && held.Add(int64(per)) >= remotewrite.DefaultMaxSamplesPerSend {
					select {
					case due <- struct{}{}:
					default:
					}
				}
				select {
				case <-tick.C:
				case <-ctx.Done():
					return
				}
			}
		})
	}
	for {
		select {
		case <-due:
		case <-ctx.Done():
			wg.Wait()
			return
		}
		for held.Load() >= remotewrite.DefaultMaxSamplesPerSend {
			held.Add(-remotewrite.DefaultMaxSamplesPerSend)
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
			req.Header.Set("Content-Encoding", "snappy")
			req.Header.Set("Content-Type", "application/x-protobuf")
			resp, err := post.Do(req)
			if err != nil {
				continue
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
}
