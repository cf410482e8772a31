package main

import (
	"errors"
	"testing"

	"github.com/emersion/go-smtp"

	"github.com/egretair/egret/mailcore/queue"
)

func TestConnectionError(t *testing.T) {
	refused := errors.New("lmtp: dial tcp: connection refused")
	reply := queue.Permanent(&smtp.SMTPError{Code: 550, Message: "no such user"})
	cases := []struct {
		name string
		errs []error
		well bool
	}{
		{"a delivery shows the back well", []error{nil}, true},
		{"a refusal of its own shows the back well", []error{reply}, true},
		{"one answer among failures shows the back well", []error{refused, nil}, true},
		{"no connection shows the back unwell", []error{refused, refused}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := connectionError(c.errs); (got == nil) != c.well {
				t.Fatalf("connectionError = %v, want well %v", got, c.well)
			}
		})
	}
}

func TestHomeByHashIsStable(t *testing.T) {
	h := &homes{backs: []backNode{{Name: "b1"}, {Name: "b2"}}}
	seen := map[string]bool{}
	for _, id := range []string{"a", "b", "c", "d", "e", "f", "g", "h"} {
		first := h.byHash(id)
		if again := h.byHash(id); again != first {
			t.Fatalf("account %s: %s, then %s", id, first, again)
		}
		seen[first] = true
	}
	if !seen["b1"] || !seen["b2"] {
		t.Fatalf("eight accounts all went to %v", seen)
	}
}
