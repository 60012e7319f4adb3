package file

import "testing"

func FuzzMatch(f *testing.F) {
	f.Add("/var/log/**/*.log", "/var/log/a/b.log")
	f.Add("a/[b-", "a/b")
	f.Add("**/**/x", "x")
	f.Fuzz(func(t *testing.T, pattern, path string) {
		if len(pattern) > 200 || len(path) > 200 {
			return
		}
		Match(pattern, path) // must not panic
		if !hasMeta(pattern) && pattern != "" && !Match(pattern, pattern) {
			t.Fatalf("literal %q does not match itself", pattern)
		}
	})
}

func FuzzParseSD(f *testing.F) {
	f.Add([]byte(`[{"targets":["a:1"],"labels":{"x":"y"}}]`))
	f.Add([]byte(`[{"targets":[""]}]`))
	f.Add([]byte("- targets: [a]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, name := range []string{"f.json", "f.yml"} {
			ts, err := ParseSD(name, data)
			if err == nil {
				for _, ls := range ts {
					if ls.Get(AddressLabel) == "" {
						t.Fatalf("target without address: %v", ls)
					}
				}
			}
		}
	})
}
