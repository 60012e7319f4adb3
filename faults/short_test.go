//go:build !faults_long

package faults

const longTag = false
