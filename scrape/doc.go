// Package scrape collects samples from Prometheus targets, as Prometheus's
// scrape loop and Alloy's prometheus.scrape do.
//
// A Scraper is a source.TargetSource of ferry.Sample: it receives complete
// target sets (from any discoverer, after relabeling), keeps one scrape loop
// per target, and emits one batch per scrape holding the scraped samples,
// the staleness markers of series that vanished, and the automatic series
// up, scrape_duration_seconds, scrape_samples_scraped,
// scrape_samples_post_metric_relabeling and scrape_series_added.
//
// Targets are label sets as Prometheus service discovery produces them:
// __address__ is required; __scheme__, __metrics_path__,
// __scrape_interval__, __scrape_timeout__, __param_<name> and job override
// the Scraper's options per target; instance defaults to __address__; every
// other label starting with "__" is dropped, the rest are attached to each
// sample (see HonorLabels).
//
// A scrape that fails (connection refused, HTTP status other than 200, a
// malformed or truncated page, a limit exceeded) marks only its target
// down: up is 0, every series of the previous scrape gets a staleness
// marker (NaN 0x7ff0000000000002), and the error is kept in Targets. A
// target that leaves the set gets staleness markers for all its series,
// the automatic ones included.
//
// Pages are parsed with Prometheus's model/textparse, which measured about
// five times faster than expfmt's decoder on the same node_exporter page
// (BenchmarkRawParserTextparse against BenchmarkRawParserExpfmt). Each loop
// caches the resolved labels of every series by the hash of its bytes in
// the page, so that a steady-state scrape allocates only the batch it emits
// (BenchmarkScrapeParse). A target's labels are held as bytes in one slice
// (some 84 bytes a series for node_exporter's page with job and instance),
// and the Labels of the samples it emits are views of that slice, not
// copies: a consumer that keeps such Labels long keeps the target's slice
// (tens of KB) alive, as Prometheus's own unsafe string views do; one that must
// not, copies them (labels.Labels.Copy). A series new to the cache gets its
// labels without a labels.Builder when no metric relabeling is set and none
// of its labels is named as a target label (the common case): its labels,
// read from its bytes when they are plain (else from the parser), are merged
// with the target's into the slice (BenchmarkScrapeFirstPage).
//
// In the Prometheus text format, the lines of a page are read without the
// lexer as far as they can be: a line is taken if its series bytes are
// those of a series textparse accepted before, or plain (name{a="b", ...}
// without escapes, in UTF-8, blanks only inside the braces: textparse
// accepts those, and their labels are read from the bytes, le and quantile
// rewritten by the type as textparse rewrites them), and the rest of it is
// the plain "value [timestamp]"; from the first other line on, textparse
// reads the page. The pages of node_exporter, Prometheus, etcd and
// VictoriaLogs, the first ones included, are read to their end this way.
// A HELP or TYPE line is checked as textparse would check it once per
// Scraper: the lines found good are
// remembered by their hash, shared by the Scraper's targets (which mostly
// run one exporter), in a table of 8 KiB that grows to at most 512 KiB.
// The result is textparse's, which FuzzSkimText checks. The text formats
// 0.0.4 and 1.0.0, OpenMetrics and the protobuf format are understood
// (native histograms are read as their classic buckets); the Accept header
// is the one Prometheus 3 sends for the configured Protocols, and pages are
// requested gzip-compressed. A gzip body is decompressed whole into the
// page's buffer by Ferry's own inflater (internal/gunzip, about 1.6× the
// speed of a streaming gzip.Reader), which fuzzing holds to compress/gzip.
//
// A plain GET to a target goes over a keep-alive HTTP/1.1 connection that
// the scraping goroutine writes and reads itself (net/http's Transport
// keeps two goroutines a connection; it still carries proxied, HTTP/2 and
// other requests). Decompressing and parsing a page wait for one of four
// slots per CPU, shared by every Scraper of the process, so that a machine
// that falls behind holds compressed bodies, not pages. A target between
// scrapes holds a timer, not a goroutine. Targets scrape at fixed phases
// within their interval, as in Prometheus, rounded to multiples of
// Scraper.Group (100 ms), so that the scrapes of one such window run
// together and share the CPU's caches and wake-ups. A target's timer
// hands each scrape to the worker goroutine of the Run that became idle
// last, which keeps the stack a scrape grew for the next one. A worker
// exits after two seconds without work, so the workers a burst of scrapes
// started do not outlive it.
package scrape
