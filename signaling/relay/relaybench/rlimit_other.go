//go:build !unix

package relaybench

func RaiseFileLimit(uint64) error { return nil }
