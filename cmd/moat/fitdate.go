package main

import (
	"bytes"
	"net/mail"
	"sort"
	"strings"
	"time"

	"github.com/moatmail/moat/filters/bayes"
)

// dateFolds assigns the samples of one class to k folds by date: the
// oldest k-th to fold 0, the next to fold 1, and so on (the messages'
// Date, else the date of their topmost Received field; a message with
// neither counts as the oldest), as scripts/corpus/split.py orders them.
func dateFolds(set []bayes.Sample, k int) []int {
	order := make([]int, len(set))
	when := make([]time.Time, len(set))
	for i, s := range set {
		order[i] = i
		when[i] = messageTime(s.Raw)
	}
	sort.SliceStable(order, func(a, b int) bool { return when[order[a]].Before(when[order[b]]) })
	out := make([]int, len(set))
	for rank, i := range order {
		out[i] = rank * k / max(len(set), 1)
	}
	return out
}

// messageTime is a message's Date, else the date after the last ';' of
// its topmost Received field (RFC 5321 §4.4), else the zero time.
func messageTime(raw []byte) time.Time {
	head := raw
	if i := bytes.Index(raw, []byte("\n\n")); i >= 0 {
		head = raw[:i+1]
	} else if i := bytes.Index(raw, []byte("\r\n\r\n")); i >= 0 {
		head = raw[:i+2]
	}
	m, err := mail.ReadMessage(bytes.NewReader(append(bytes.Clone(head), '\n')))
	if err != nil {
		return time.Time{}
	}
	if t, err := mail.ParseDate(strings.Join(strings.Fields(m.Header.Get("Date")), " ")); err == nil {
		return t
	}
	rcvd := m.Header.Get("Received")
	if i := strings.LastIndexByte(rcvd, ';'); i >= 0 {
		if t, err := mail.ParseDate(strings.Join(strings.Fields(rcvd[i+1:]), " ")); err == nil {
			return t
		}
	}
	return time.Time{}
}
