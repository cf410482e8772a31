package oidcp

import (
	"net/http"
	"sync"
	"time"
)

// SessionLifetime bounds a browser's sign-in at the provider: within it
// a second application signs the user in without asking again.
const SessionLifetime = 8 * time.Hour

const sessionCookie = "egret_oidc_session"

type session struct {
	subject string
	amr     []string
	at      time.Time
}

// sessions are the browsers signed in at the provider, by a random id
// kept in a cookie.
type sessions struct {
	mu sync.Mutex
	m  map[string]session
}

func newSessions() *sessions { return &sessions{m: map[string]session{}} }

func (s *sessions) start(subject string, amr []string) (string, session) {
	id := randomString(24)
	ss := session{subject: subject, amr: amr, at: time.Now()}
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, v := range s.m {
		if time.Since(v.at) > SessionLifetime {
			delete(s.m, k)
		}
	}
	s.m[id] = ss
	return id, ss
}

// fromRequest answers the live session of the request's cookie.
func (s *sessions) fromRequest(r *http.Request) (string, session, bool) {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return "", session{}, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ss, ok := s.m[c.Value]
	if !ok || time.Since(ss.at) > SessionLifetime {
		return "", session{}, false
	}
	return c.Value, ss, true
}

func (s *sessions) end(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, id)
}

// endSubject ends every session of a person.
func (s *sessions) endSubject(subject string) {
	if subject == "" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, v := range s.m {
		if v.subject == subject {
			delete(s.m, k)
		}
	}
}
