package node

import (
	"context"
	"net"
	"testing"
	"time"
)

// TestTreeRestartsAFailedService: a service whose run returns on its own
// is run again and counted, and its sibling is not touched.
func TestTreeRestartsAFailedService(t *testing.T) {
	tree := NewTree("test", nil, nil)
	runs := make(chan int, 10)
	n := 0
	tree.Add("flaky", func(ctx context.Context) error {
		n++
		runs <- n
		if n == 1 {
			return nil
		}
		<-ctx.Done()
		return nil
	})
	steadyRuns := 0
	tree.Add("steady", func(ctx context.Context) error {
		steadyRuns++
		<-ctx.Done()
		return nil
	})
	tree.Start(context.Background())
	for want := 1; want <= 2; want++ {
		select {
		case got := <-runs:
			if got != want {
				t.Fatalf("run %d, want %d", got, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("flaky service not run a %d. time", want)
		}
	}
	waitStatus(t, tree, "flaky", StateRunning, 1)
	tree.Stop(time.Second)
	for _, s := range tree.Status() {
		if s.State != StateStopped {
			t.Errorf("after Stop %s is %s", s.Name, s.State)
		}
		if s.Name == "flaky" && s.LastCause == "" {
			t.Errorf("flaky has no cause recorded")
		}
	}
	if steadyRuns != 1 {
		t.Errorf("steady service ran %d times, want 1", steadyRuns)
	}
}

// TestListeningBindsAgainAfterAPanic: Fail makes a listening service
// panic; the restart serves on the same address.
func TestListeningBindsAgainAfterAPanic(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	tree := NewTree("test", nil, nil)
	tree.Add("echo", Listening(ln, nil, func(ctx context.Context, l net.Listener) error {
		return Until(ctx, time.Second, func() error {
			for {
				c, err := l.Accept()
				if err != nil {
					return nil
				}
				c.Write([]byte("hi"))
				c.Close()
			}
		}, func(context.Context) error { return l.Close() })
	}))
	tree.Start(context.Background())
	defer tree.Stop(time.Second)
	greet(t, addr)
	if !tree.Fail("echo") {
		t.Fatal("Fail found no service echo")
	}
	waitStatus(t, tree, "echo", StateRunning, 1)
	greet(t, addr)
}

func greet(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			b := make([]byte, 2)
			_, err = c.Read(b)
			c.Close()
			if err == nil && string(b) == "hi" {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no greeting at %s: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func waitStatus(t *testing.T, tree *Tree, name, state string, restarts int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		for _, s := range tree.Status() {
			if s.Name == name && s.State == state && s.Restarts == restarts {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never %s with %d restarts: %+v", name, state, restarts, tree.Status())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
