package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"
)

// chaosChange is one OA change page the chaos test posted: a new
// department with an OA id of its own.
type chaosChange struct {
	id, name string
	// status and retryAfter are the answer to the first post; status
	// is 0 when no answer came.
	status     int
	retryAfter string
	err        error
	// at is when it was first posted.
	at time.Time
	// retries counts the posts after the first, once refused.
	retries int
}

// chaosWriter posts one change page every interval through the fronts
// in turn, until stopped.
type chaosWriter struct {
	fronts []*node
	parent string
	rounds

	mu      sync.Mutex
	changes []*chaosChange
}

// startChaosWriter starts posting departments under the OA unit parent.
func startChaosWriter(fronts []*node, parent string, interval time.Duration) *chaosWriter {
	w := &chaosWriter{fronts: fronts, parent: parent}
	w.every(interval, func(k int) {
		c := &chaosChange{id: fmt.Sprintf("chaos-dept-%04d", k),
			name: fmt.Sprintf("混沌 %04d", k), at: time.Now()}
		c.status, c.retryAfter, c.err = w.post(w.fronts[k%len(w.fronts)], c)
		w.mu.Lock()
		w.changes = append(w.changes, c)
		w.mu.Unlock()
	})
	return w
}

// post sends c as a page of changes and answers the status and
// Retry-After of the answer.
func (w *chaosWriter) post(n *node, c *chaosChange) (int, string, error) {
	page, _ := json.Marshal([]map[string]any{{"id": c.id, "type": "dept", "name": c.name,
		"parent": w.parent, "isAvailable": true}})
	req, err := http.NewRequest(http.MethodPost, "http://"+n.httpAddr+"/api/v1/oa/changes", bytes.NewReader(page))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Authorization", "Bearer "+n.apiKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: clientCallTimeout}).Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusServiceUnavailable {
		return resp.StatusCode, "", fmt.Errorf("POST /api/v1/oa/changes: %d %.300s", resp.StatusCode, body)
	}
	return resp.StatusCode, resp.Header.Get("Retry-After"), nil
}

// retryRefused posts every change that was refused again until it is
// applied, and answers an error for one still refused at the deadline.
func (w *chaosWriter) retryRefused(deadline time.Time) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	for i, c := range w.changes {
		if c.status == http.StatusOK {
			continue
		}
		for {
			c.retries++
			status, _, err := w.post(w.fronts[i%len(w.fronts)], c)
			if err == nil && status == http.StatusOK {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("change %s still refused after %d retries: %d %v", c.id, c.retries, status, err)
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
	return nil
}

// orgUnitName reads an org unit by its OA id through n and answers its
// name, or "" when there is no such unit.
func orgUnitName(n *node, oaID string) (string, error) {
	status, body, err := n.api(http.MethodGet, "/api/v1/orgunits/"+url.PathEscape(oaID), nil)
	switch {
	case err != nil:
		return "", err
	case status == http.StatusNotFound:
		return "", nil
	case status != http.StatusOK:
		return "", fmt.Errorf("GET /api/v1/orgunits/%s: %d %.300s", oaID, status, body)
	}
	var u struct {
		Name string `json:"name"`
	}
	if err := json.Unmarshal(body, &u); err != nil {
		return "", fmt.Errorf("GET /api/v1/orgunits/%s: %w", oaID, err)
	}
	return u.Name, nil
}

// oaFigures sums up the chaos writer's changes.
type oaFigures struct {
	posted, duringOutage, applied, refused int
}

// check sends again the changes that were refused, then requires every
// change to be in the directory, read through n, and every first answer
// to have been 200, or 503 with Retry-After. down and up are when the
// primary died and came back.
func (w *chaosWriter) check(t *testing.T, n *node, down, up time.Time) oaFigures {
	t.Helper()
	if err := w.retryRefused(time.Now().Add(30 * time.Second)); err != nil {
		t.Error(err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	f := oaFigures{posted: len(w.changes)}
	var refusedBefore, refusedAfter int
	for _, c := range w.changes {
		switch {
		case c.at.Before(down):
			if c.status != http.StatusOK {
				refusedBefore++
			}
		case c.at.Before(up):
			f.duringOutage++
		case c.status != http.StatusOK:
			refusedAfter++
		}
		switch {
		case c.err != nil:
			t.Errorf("OA change %s: %v", c.id, c.err)
		case c.status == http.StatusOK:
			f.applied++
		case c.retryAfter == "":
			t.Errorf("OA change %s refused with %d and no Retry-After", c.id, c.status)
		default:
			f.refused++
		}
		name, err := orgUnitName(n, c.id)
		if err != nil || name != c.name {
			t.Errorf("OA change %s (answered %d, %d retries): unit named %q, %v; want %q",
				c.id, c.status, c.retries, name, err, c.name)
		}
	}
	t.Logf("OA changes not applied at once: %d before the primary's death, %d after its return",
		refusedBefore, refusedAfter)
	if f.duringOutage < 3 {
		t.Errorf("only %d OA changes were sent while the primary was away", f.duringOutage)
	}
	return f
}
