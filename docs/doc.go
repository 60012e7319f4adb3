// Package docs holds Ferry's guides and the tests that keep them true.
//
// Every Go snippet of migration.md is a marked region of snippets_test.go,
// compiled and run by a test; TestGuideInSync fails when the markdown and
// the code differ. After changing a snippet, regenerate the guide with
//
//	go test ./docs -run TestGuideInSync -update
package docs
