package dockertest_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/ferrydev/ferry/internal/dockertest"
)

func TestMain(m *testing.M) { dockertest.Main(m) }

func TestRunPrintsLines(t *testing.T) {
	c := dockertest.Client(t)
	s := dockertest.Spec{Lines: 5, Stderr: true}
	id := dockertest.Run(t, c, s)
	if code := dockertest.WaitExit(t, c, id); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	rc, err := c.ContainerLogs(context.Background(), id, container.LogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var out, errb bytes.Buffer
	if _, err := stdcopy.StdCopy(&out, &errb, rc); err != nil {
		t.Fatal(err)
	}
	var wantOut, wantErr []string
	for i := range 5 {
		if dockertest.IsStderr(s, i) {
			wantErr = append(wantErr, dockertest.Line(s, 1, i))
		} else {
			wantOut = append(wantOut, dockertest.Line(s, 1, i))
		}
	}
	if got, want := out.String(), strings.Join(wantOut, "\n")+"\n"; got != want {
		t.Errorf("stdout = %q, want %q", got, want)
	}
	if got, want := errb.String(), strings.Join(wantErr, "\n")+"\n"; got != want {
		t.Errorf("stderr = %q, want %q", got, want)
	}
}
