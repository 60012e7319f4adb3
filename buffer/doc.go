// Package buffer puts a disk buffer between a pipeline and a sink, so that
// an outage of the receiver longer than the in-memory queues, or a crash of
// the program, loses nothing.
//
// TODO: full design notes.
package buffer
