package reptest

import (
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/ferrydev/ferry"
)

func TestReporter(t *testing.T) {
	var r Reporter
	if h, err := r.Health(); h != ferry.HealthUnknown || err != nil {
		t.Fatalf("Health before any = %v, %v", h, err)
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			r.Dropped("full", 2)
			r.Retried()
			r.Logger().Debug("dropping", "n", 2)
		})
	}
	wg.Wait()
	boom := errors.New("boom")
	r.SetHealth(ferry.Degraded, boom)
	r.SetHealth(ferry.Healthy, nil)
	if r.Drops("full") != 8 || r.AllDrops()["full"] != 8 || r.Drops("other") != 0 {
		t.Errorf("drops %v", r.AllDrops())
	}
	if r.Retries() != 4 {
		t.Errorf("retries %d", r.Retries())
	}
	if h, err := r.Health(); h != ferry.Healthy || err != nil {
		t.Errorf("Health = %v, %v", h, err)
	}
	if hs := r.Healths(); len(hs) != 2 || hs[0] != ferry.Degraded {
		t.Errorf("Healths = %v", hs)
	}
	if errs := r.Errors(); len(errs) != 1 || errs[0] != boom {
		t.Errorf("Errors = %v", errs)
	}
	if n := strings.Count(r.Logs(), "msg=dropping"); n != 4 {
		t.Errorf("%d records logged:\n%s", n, r.Logs())
	}
}
