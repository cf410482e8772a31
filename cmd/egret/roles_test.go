package main

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
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

func TestBackHTTPServesTheWebMailboxToFrontsOnly(t *testing.T) {
	const secret = "a-cluster-secret-of-some-length"
	sources := []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	h := backHTTP(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusTeapot)
	}), func(r *http.Request) bool { return fromFront(r, secret, sources) })
	cases := []struct {
		name, path, from, token string
		want                    int
	}{
		{"health is for anyone", "/healthz", "10.0.0.9:5000", "", http.StatusTeapot},
		{"a front's relay of the list is served", "/mail/", "127.0.0.1:5000", secret, http.StatusTeapot},
		{"a front's relay of a message is served", "/mail/read", "127.0.0.1:5000", secret, http.StatusTeapot},
		{"a browser is refused", "/mail/", "127.0.0.1:5000", "", http.StatusForbidden},
		{"a wrong secret is refused", "/mail/", "127.0.0.1:5000", "not-it", http.StatusForbidden},
		{"the secret from outside the sources is refused", "/mail/", "10.0.0.9:5000", secret, http.StatusForbidden},
		{"sign-in is the fronts'", "/mail/login", "127.0.0.1:5000", secret, http.StatusNotFound},
		{"the API is the fronts'", "/api/v1/users", "127.0.0.1:5000", secret, http.StatusNotFound},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, c.path, nil)
			r.RemoteAddr = c.from
			if c.token != "" {
				r.Header.Set("Authorization", "Bearer "+c.token)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != c.want {
				t.Fatalf("GET %s from %s: %d, want %d", c.path, c.from, w.Code, c.want)
			}
		})
	}
}
