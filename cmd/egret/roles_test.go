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
