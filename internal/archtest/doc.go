// Package archtest holds tests that keep berth's structure honest: the
// public API package imports nothing of ours, and every package says what
// it is for in a doc comment.
package archtest
