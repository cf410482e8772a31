package ldapmirror

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/go-ldap/ldap/v3"

	"github.com/egretair/egret/directory"
)

// Report says what a full pass changed, or with DryRun would change:
// the DNs of the entries added, moved, modified and deleted.
type Report struct {
	DryRun    bool     `json:"dry_run"`
	Added     []string `json:"added"`
	Moved     []string `json:"moved"`
	Modified  []string `json:"modified"`
	Deleted   []string `json:"deleted"`
	Unchanged int      `json:"unchanged"`
	// Head is the last change-log row the directory held when the pass
	// read it; the pass leaves LDAP at least that current.
	Head int64 `json:"head"`
}

// Changed reports whether the pass changed anything.
func (r *Report) Changed() int {
	return len(r.Added) + len(r.Moved) + len(r.Modified) + len(r.Deleted)
}

// desiredTree answers every entry egret would have under the base, in
// the order they can be added: parents first.
func desiredTree(base string, st *dirState, pinned map[string]string) []*Entry {
	l := newLayout(base, st.units, st.groups, pinned)
	out := l.containers()
	for id := range st.units {
		out = append(out, l.unitEntry(id))
	}
	for _, p := range st.people {
		out = append(out, l.personEntry(p))
	}
	for id, g := range st.groups {
		out = append(out, l.groupEntry(g, st.members[id], st.people))
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Depth != out[j].Depth {
			return out[i].Depth < out[j].Depth
		}
		return out[i].DN < out[j].DN
	})
	return out
}

// pinnedRDNs answers the RDN value each egret entry has now, by id.
func pinnedRDNs(cur []*current) map[string]string {
	out := map[string]string{}
	for _, c := range cur {
		if c.ID == "" {
			continue
		}
		d, err := ldap.ParseDN(c.DN)
		if err != nil || len(d.RDNs) == 0 || len(d.RDNs[0].Attributes) != 1 {
			continue
		}
		out[c.ID] = d.RDNs[0].Attributes[0].Value
	}
	return out
}

// headSeq answers the last row of the change log, 0 for none.
func headSeq(ctx context.Context, s *directory.Store) (int64, error) {
	var head *int64
	err := s.DB().WithContext(ctx).Model(&directory.Change{}).
		Select("MAX(seq)").Scan(&head).Error
	if err != nil {
		return 0, fmt.Errorf("ldapmirror: read change log head: %w", err)
	}
	if head == nil {
		return 0, nil
	}
	return *head, nil
}

// fullPass compares the whole directory with everything under the base
// and makes LDAP equal to it: entries egret lacks are added, misplaced
// ones moved, edited ones put back, and entries egret did not make
// deleted. Adds and modifies run over cfg.conns() connections with
// several requests in flight on each (see stages for the order).
func fullPass(ctx context.Context, cfg Config, s *directory.Store, dry bool) (*Report, error) {
	rep := &Report{DryRun: dry}
	head, err := headSeq(ctx, s)
	if err != nil {
		return nil, err
	}
	rep.Head = head

	// LDAP is read, and the writers' connections opened, while the
	// directory loads: the two wait on different servers. Only this
	// pass writes below the base, so which is read first is moot.
	var (
		conn *ldap.Conn
		es   []*ldap.Entry
		wp   *pool
		lerr error
		read = make(chan struct{})
	)
	go func() {
		defer close(read)
		if conn, lerr = cfg.dial(); lerr != nil {
			return
		}
		es, lerr = searchAll(conn, cfg.BaseDN, ldap.ScopeWholeSubtree,
			"(objectClass=*)", []string{"*"})
		if lerr == nil && !dry {
			wp, lerr = openPool(cfg, conn)
		}
	}()
	st, err := loadAll(ctx, s)
	<-read
	if conn != nil {
		defer conn.Close()
	}
	if wp != nil {
		defer wp.close()
	}
	if err != nil {
		return nil, err
	}
	if lerr != nil {
		return nil, lerr
	}

	baseNorm := normDN(cfg.BaseDN)
	var cur []*current
	haveBase := false
	for _, e := range es {
		c := fromLDAP(e)
		if c.norm == baseNorm {
			haveBase = true
			continue
		}
		cur = append(cur, c)
	}
	want := desiredTree(cfg.BaseDN, st, pinnedRDNs(cur))

	// Match each wanted entry to what holds its id, or failing that
	// its DN; the rest is drift to delete. An empty tree, as at a
	// first mirror, has nothing to match.
	have := make([]*current, len(want))
	claimed := map[*current]bool{}
	if len(cur) > 0 {
		byID := map[string][]*current{}
		byNorm := map[string]*current{}
		for _, c := range cur {
			if c.ID != "" {
				byID[c.ID] = append(byID[c.ID], c)
			}
			byNorm[c.norm] = c
		}
		for i, w := range want {
			wn := normDN(w.DN)
			for _, c := range byID[w.ID] {
				if have[i] == nil || c.norm == wn {
					have[i] = c
				}
			}
			if have[i] == nil {
				if c := byNorm[wn]; c != nil && !claimed[c] && (c.ID == "" || len(byID[c.ID]) == 0 || c.ID == w.ID) {
					have[i] = c
				}
			}
			if have[i] != nil {
				claimed[have[i]] = true
			}
		}
	}
	var strays []*current
	for _, c := range cur {
		if !claimed[c] {
			strays = append(strays, c)
		}
	}

	if dry {
		for i, w := range want {
			h := have[i]
			switch {
			case h == nil:
				rep.Added = append(rep.Added, w.DN)
			case h.norm != normDN(w.DN):
				rep.Moved = append(rep.Moved, h.DN+" -> "+w.DN)
			case len(diffAttrs(w.Attrs, h.Attrs)) > 0:
				rep.Modified = append(rep.Modified, w.DN)
			default:
				rep.Unchanged++
			}
		}
		for _, c := range strays {
			rep.Deleted = append(rep.Deleted, c.DN)
		}
		return rep, nil
	}

	w := &writer{conn: conn, base: cfg.BaseDN}
	if !haveBase {
		be, err := baseEntry(cfg.BaseDN)
		if err != nil {
			return nil, err
		}
		if err := conn.Add(addRequest(be)); err != nil &&
			!ldap.IsErrorWithCode(err, ldap.LDAPResultEntryAlreadyExists) {
			return nil, fmt.Errorf("ldapmirror: add base %s: %w", cfg.BaseDN, err)
		}
	}

	// Moves first, parents before children; a unit's move takes its
	// subtree along, so the DNs held for what is under it are redone.
	for i, e := range want {
		h := have[i]
		if h == nil || h.norm == normDN(e.DN) {
			continue
		}
		from := h.DN
		if err := w.move(from, e.DN); err != nil {
			return rep, err
		}
		rep.Moved = append(rep.Moved, from+" -> "+e.DN)
		oldSuffix := "," + h.norm
		newDN := e.DN
		for _, c := range cur {
			if strings.HasSuffix(c.norm, oldSuffix) {
				c.DN = c.DN[:len(c.DN)-len(from)] + newDN
				c.norm = normDN(c.DN)
			}
		}
		fresh, err := readEntry(conn, e.DN)
		if err != nil {
			return rep, err
		}
		if fresh != nil {
			*h = *fresh
		}
	}

	// Then drift is removed, deepest first.
	sort.Slice(strays, func(i, j int) bool {
		return strings.Count(strays[i].norm, ",") > strings.Count(strays[j].norm, ",")
	})
	for _, c := range strays {
		if err := w.remove(c.DN); err != nil {
			return rep, err
		}
		rep.Deleted = append(rep.Deleted, c.DN)
	}

	// Then adds and modifies, a stage at a time.
	var mu sync.Mutex
	for _, stage := range stages(want) {
		err := wp.run(ctx, len(stage), func(w *writer, k int) error {
			i := stage[k]
			e, h := want[i], have[i]
			if h != nil && h.norm == normDN(e.DN) && len(diffAttrs(e.Attrs, h.Attrs)) == 0 {
				mu.Lock()
				rep.Unchanged++
				mu.Unlock()
				return nil
			}
			acts, err := w.upsert(e, h)
			if err != nil {
				return err
			}
			mu.Lock()
			for _, a := range acts {
				switch a {
				case actAdd:
					rep.Added = append(rep.Added, e.DN)
				case actModify:
					rep.Modified = append(rep.Modified, e.DN)
				}
			}
			mu.Unlock()
			return nil
		})
		if err != nil {
			return rep, err
		}
	}
	return rep, nil
}

// stages splits want, which desiredTree ordered parents first, into the
// groups of indexes that may be written in any order: the containers
// and units one depth at a time, then every person and group at once,
// since those are leaves whose parents are all in an earlier stage.
// Writing the leaves together rather than by depth keeps every
// connection busy through the bulk of a first mirror.
func stages(want []*Entry) [][]int {
	var out [][]int
	var leaves []int
	depth := -1
	for i, e := range want {
		if e.Kind == kindPerson || e.Kind == kindGroup {
			leaves = append(leaves, i)
			continue
		}
		if len(out) == 0 || e.Depth != depth {
			out = append(out, nil)
			depth = e.Depth
		}
		out[len(out)-1] = append(out[len(out)-1], i)
	}
	if len(leaves) > 0 {
		out = append(out, leaves)
	}
	return out
}

// pool is a few bound connections, each running up to inFlight jobs at
// once. go-ldap matches responses to requests by message id, so one
// connection carries several requests at a time (RFC 4511 §4.1.1); a
// job's own operations still run one after another.
type pool struct {
	writers []*writer
	opened  []*ldap.Conn
}

// inFlight is the requests each connection of a pool carries at once.
// One at a time leaves slapd idle for a round trip per entry; many more
// than its worker threads (16 by default) only queue there.
const inFlight = 8

// openPool answers cfg.conns() writers, the first over first.
func openPool(cfg Config, first *ldap.Conn) (*pool, error) {
	p := &pool{writers: []*writer{{conn: first, base: cfg.BaseDN}}}
	for len(p.writers) < cfg.conns() {
		c, err := cfg.dial()
		if err != nil {
			p.close()
			return nil, err
		}
		p.opened = append(p.opened, c)
		p.writers = append(p.writers, &writer{conn: c, base: cfg.BaseDN})
	}
	return p, nil
}

func (p *pool) close() {
	for _, c := range p.opened {
		c.Close()
	}
}

// run calls fn for jobs 0..n-1 spread over the writers, and answers the
// first error; jobs not started when one fails are not started.
func (p *pool) run(ctx context.Context, n int, fn func(w *writer, k int) error) error {
	jobs := make(chan int)
	workers := min(n, len(p.writers)*inFlight)
	errc := make(chan error, workers)
	var wg sync.WaitGroup
	for i := 0; i < workers; i++ {
		w := p.writers[i%len(p.writers)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range jobs {
				if err := fn(w, k); err != nil {
					errc <- err
					return
				}
			}
		}()
	}
	var err error
feed:
	for k := 0; k < n; k++ {
		select {
		case jobs <- k:
		case err = <-errc:
			break feed
		case <-ctx.Done():
			err = ctx.Err()
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	if err == nil {
		select {
		case err = <-errc:
		default:
		}
	}
	return err
}
