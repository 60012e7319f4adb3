// Package faults holds Ferry's fault-injection suite: receiver outages,
// agent crashes, Docker connection loss, container storms, hostile input
// and a soak run, against real peers (the Docker engine, VictoriaLogs,
// Prometheus). It has no API; everything is in its tests:
//
//	go test -race ./faults                     # short variants, as in CI
//	go test -race -tags faults_long ./faults   # long variants (or FERRY_FAULTS_LONG=1)
package faults
