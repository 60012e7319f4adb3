package kubernetes

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// fakeAPI is an HTTP server that answers list and watch requests the way
// the Kubernetes API server does, over objects the test adds, changes and
// deletes: lists with a resourceVersion, watches (plain, from a
// resourceVersion, and the streaming "watch list" with initial events and
// the initial-events-end bookmark that client-go uses by default), field
// selectors spec.nodeName and metadata.name, label selectors k=v, watch
// disconnects, "410 Gone" for too old resource versions, and 403 Forbidden.
type fakeAPI struct {
	t   testing.TB
	srv *httptest.Server

	mu        sync.Mutex
	rv        int
	objs      map[string]map[string]map[string]any // resource -> ns/name -> object
	events    map[string][]fakeEvent
	watchers  map[*fakeWatcher]bool
	forbidden string            // non-empty: every request is refused with this message
	forbidNS  map[string]string // namespace -> message: requests in it are refused
	goneBelow int               // watches from an older resourceVersion get 410 Gone
	lists     int               // list requests served
	watches   int               // watch requests served
}

type fakeEvent struct {
	rv  int
	typ string
	obj map[string]any
}

type fakeWatcher struct {
	resource, ns string
	match        func(map[string]any) bool
	ch           chan fakeEvent
	closed       chan struct{}
	once         sync.Once
}

func (w *fakeWatcher) close() { w.once.Do(func() { close(w.closed) }) }

func newFakeAPI(t testing.TB) *fakeAPI {
	f := &fakeAPI{t: t, objs: map[string]map[string]map[string]any{}, events: map[string][]fakeEvent{},
		watchers: map[*fakeWatcher]bool{}, rv: 100}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(func() {
		f.disconnect()
		f.srv.Close()
	})
	return f
}

func (f *fakeAPI) URL() string { return f.srv.URL }

// stop ends every connection and closes the listener, as an API server
// that goes away.
func (f *fakeAPI) stop() {
	f.disconnect()
	f.srv.CloseClientConnections()
	f.srv.Close()
}

// start serves again, on the address of before, after stop.
func (f *fakeAPI) start() {
	ln, err := net.Listen("tcp", f.srv.Listener.Addr().String())
	if err != nil {
		f.t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(f.serve))
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	f.srv = srv
}

// put adds or replaces obj (kind inferred from resource) and records the
// event.
func (f *fakeAPI) put(resource string, obj map[string]any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rv++
	md := obj["metadata"].(map[string]any)
	md["resourceVersion"] = strconv.Itoa(f.rv)
	key := objKey(obj)
	if f.objs[resource] == nil {
		f.objs[resource] = map[string]map[string]any{}
	}
	typ := "ADDED"
	if _, ok := f.objs[resource][key]; ok {
		typ = "MODIFIED"
	}
	f.objs[resource][key] = obj
	f.emit(resource, fakeEvent{f.rv, typ, obj})
}

func (f *fakeAPI) del(resource, ns, name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	key := ns + "/" + name
	obj, ok := f.objs[resource][key]
	if !ok {
		return
	}
	f.rv++
	delete(f.objs[resource], key)
	obj = clone(obj)
	obj["metadata"].(map[string]any)["resourceVersion"] = strconv.Itoa(f.rv)
	f.emit(resource, fakeEvent{f.rv, "DELETED", obj})
}

func (f *fakeAPI) emit(resource string, ev fakeEvent) {
	f.events[resource] = append(f.events[resource], ev)
	for w := range f.watchers {
		if w.resource == resource && w.match(ev.obj) {
			select {
			case w.ch <- ev:
			default: // a slow watcher is disconnected, as the API server does
				w.close()
			}
		}
	}
}

// disconnect ends every open watch.
func (f *fakeAPI) disconnect() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for w := range f.watchers {
		w.close()
		delete(f.watchers, w)
	}
}

// expireHistory makes every resource version up to now too old: watches
// resumed from them get 410 Gone and the client must list again.
func (f *fakeAPI) expireHistory() {
	f.mu.Lock()
	f.goneBelow = f.rv + 1
	f.mu.Unlock()
}

func (f *fakeAPI) setForbidden(msg string) {
	f.mu.Lock()
	f.forbidden = msg
	f.mu.Unlock()
}

// forbidNamespace refuses requests in namespace ns with msg, or no more
// when msg is empty.
func (f *fakeAPI) forbidNamespace(ns, msg string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.forbidNS == nil {
		f.forbidNS = map[string]string{}
	}
	if msg == "" {
		delete(f.forbidNS, ns)
	} else {
		f.forbidNS[ns] = msg
	}
}

func (f *fakeAPI) counts() (lists, watches int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lists, f.watches
}

func objKey(obj map[string]any) string {
	md := obj["metadata"].(map[string]any)
	ns, _ := md["namespace"].(string)
	return ns + "/" + md["name"].(string)
}

func clone(obj map[string]any) map[string]any {
	b, _ := json.Marshal(obj)
	var out map[string]any
	json.Unmarshal(b, &out)
	return out
}

func status(w http.ResponseWriter, code int, reason, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]any{"kind": "Status", "apiVersion": "v1", "metadata": map[string]any{},
		"status": "Failure", "message": msg, "reason": reason, "code": code})
}

// route splits /api/v1/[namespaces/<ns>/]<resource> and the /apis/ forms.
func route(path string) (ns, resource string, ok bool) {
	var rest string
	switch {
	case strings.HasPrefix(path, "/api/v1/"):
		rest = strings.TrimPrefix(path, "/api/v1/")
	case strings.HasPrefix(path, "/apis/"):
		parts := strings.SplitN(strings.TrimPrefix(path, "/apis/"), "/", 3)
		if len(parts) < 3 {
			return "", "", false
		}
		rest = parts[2]
	default:
		return "", "", false
	}
	parts := strings.Split(rest, "/")
	switch {
	case len(parts) == 1:
		return "", parts[0], true
	case len(parts) == 3 && parts[0] == "namespaces":
		return parts[1], parts[2], true
	}
	return "", "", false
}

var kinds = map[string]string{"pods": "Pod", "nodes": "Node", "services": "Service", "endpoints": "Endpoints",
	"namespaces": "Namespace", "endpointslices": "EndpointSlice", "ingresses": "Ingress"}

func apiVersion(resource string) string {
	switch resource {
	case "endpointslices":
		return "discovery.k8s.io/v1"
	case "ingresses":
		return "networking.k8s.io/v1"
	}
	return "v1"
}

func field(obj map[string]any, path string) string {
	var cur any = obj
	for _, p := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return ""
		}
		cur = m[p]
	}
	s, _ := cur.(string)
	return s
}

// matcher evaluates the field selectors (a=b, comma-separated) and label
// selectors (k=v, comma-separated) the tests use.
func matcher(ns, fieldSel, labelSel string) (func(map[string]any) bool, error) {
	type eq struct{ k, v string }
	var fields, lbls []eq
	for _, s := range []struct {
		sel string
		out *[]eq
	}{{fieldSel, &fields}, {labelSel, &lbls}} {
		if s.sel == "" {
			continue
		}
		for _, term := range strings.Split(s.sel, ",") {
			k, v, ok := strings.Cut(term, "=")
			if !ok || strings.ContainsAny(k, "!") {
				return nil, fmt.Errorf("unsupported selector %q", term)
			}
			*s.out = append(*s.out, eq{strings.TrimSpace(k), strings.TrimSpace(strings.TrimPrefix(v, "="))})
		}
	}
	return func(obj map[string]any) bool {
		if ns != "" && field(obj, "metadata.namespace") != ns {
			return false
		}
		for _, e := range fields {
			if field(obj, e.k) != e.v {
				return false
			}
		}
		labels, _ := obj["metadata"].(map[string]any)["labels"].(map[string]any)
		for _, e := range lbls {
			if v, _ := labels[e.k].(string); v != e.v {
				return false
			}
		}
		return true
	}, nil
}

func (f *fakeAPI) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	forbidden := f.forbidden
	f.mu.Unlock()
	if forbidden != "" {
		status(w, http.StatusForbidden, "Forbidden", forbidden)
		return
	}
	ns, resource, ok := route(r.URL.Path)
	if !ok || kinds[resource] == "" {
		status(w, http.StatusNotFound, "NotFound", "the server could not find the requested resource")
		return
	}
	f.mu.Lock()
	forbidden = f.forbidNS[ns]
	f.mu.Unlock()
	if forbidden != "" {
		status(w, http.StatusForbidden, "Forbidden", forbidden)
		return
	}
	q := r.URL.Query()
	match, err := matcher(ns, q.Get("fieldSelector"), q.Get("labelSelector"))
	if err != nil {
		status(w, http.StatusBadRequest, "BadRequest", err.Error())
		return
	}
	if q.Get("watch") == "true" || q.Get("watch") == "1" {
		f.watch(w, r, resource, ns, match)
		return
	}
	f.list(w, resource, match, q.Get("limit"))
}

func (f *fakeAPI) sorted(resource string, match func(map[string]any) bool) []map[string]any {
	var items []map[string]any
	for _, o := range f.objs[resource] {
		if match(o) {
			items = append(items, o)
		}
	}
	sort.Slice(items, func(i, j int) bool { return objKey(items[i]) < objKey(items[j]) })
	return items
}

func (f *fakeAPI) list(w http.ResponseWriter, resource string, match func(map[string]any) bool, limit string) {
	f.mu.Lock()
	f.lists++
	items := f.sorted(resource, match)
	if limit == "1" && len(items) > 1 {
		items = items[:1] // the health checks; other lists are whole, as from the API server's cache
	}
	body, err := json.Marshal(map[string]any{"kind": kinds[resource] + "List", "apiVersion": apiVersion(resource),
		"metadata": map[string]any{"resourceVersion": strconv.Itoa(f.rv)}, "items": items})
	f.mu.Unlock()
	if err != nil {
		f.t.Error(err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(body)
}

func (f *fakeAPI) watch(w http.ResponseWriter, r *http.Request, resource, ns string, match func(map[string]any) bool) {
	q := r.URL.Query()
	wt := &fakeWatcher{resource: resource, ns: ns, match: match, ch: make(chan fakeEvent, 1024), closed: make(chan struct{})}
	var initial []fakeEvent
	f.mu.Lock()
	f.watches++
	switch {
	case q.Get("sendInitialEvents") == "true":
		for _, o := range f.sorted(resource, match) {
			rv, _ := strconv.Atoi(o["metadata"].(map[string]any)["resourceVersion"].(string))
			initial = append(initial, fakeEvent{rv, "ADDED", o})
		}
		initial = append(initial, fakeEvent{f.rv, "BOOKMARK", map[string]any{"kind": kinds[resource], "apiVersion": apiVersion(resource),
			"metadata": map[string]any{"resourceVersion": strconv.Itoa(f.rv),
				"annotations": map[string]any{"k8s.io/initial-events-end": "true"}}}})
	default:
		from, _ := strconv.Atoi(q.Get("resourceVersion"))
		if from < f.goneBelow {
			f.mu.Unlock()
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(map[string]any{"type": "ERROR", "object": map[string]any{"kind": "Status",
				"apiVersion": "v1", "status": "Failure", "reason": "Expired", "code": 410,
				"message": fmt.Sprintf("too old resource version: %d (%d)", from, f.goneBelow)}})
			return
		}
		for _, ev := range f.events[resource] {
			if ev.rv > from && match(ev.obj) {
				initial = append(initial, ev)
			}
		}
	}
	f.watchers[wt] = true
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		delete(f.watchers, wt)
		f.mu.Unlock()
	}()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	flush := w.(http.Flusher)
	send := func(ev fakeEvent) bool {
		obj := ev.obj
		if ev.typ != "BOOKMARK" {
			obj = clone(obj)
			obj["kind"], obj["apiVersion"] = kinds[resource], apiVersion(resource)
		}
		if err := enc.Encode(map[string]any{"type": ev.typ, "object": obj}); err != nil {
			return false
		}
		flush.Flush()
		return true
	}
	for _, ev := range initial {
		if !send(ev) {
			return
		}
	}
	flush.Flush()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-wt.closed:
			return
		case ev := <-wt.ch:
			if !send(ev) {
				return
			}
		}
	}
}

// pod returns a pod object in the shape the API server serves.
func pod(ns, name, uid, node string, containers ...string) map[string]any {
	var cs, statuses []any
	for i, c := range containers {
		ctr := map[string]any{"name": c, "image": "registry.example/" + c + ":1"}
		if i == 0 {
			ctr["ports"] = []any{
				map[string]any{"name": "http", "containerPort": 8080, "protocol": "TCP"},
				map[string]any{"name": "metrics", "containerPort": 9090, "protocol": "TCP"},
			}
		}
		cs = append(cs, ctr)
		statuses = append(statuses, map[string]any{"name": c, "ready": true, "restartCount": 0,
			"image": "registry.example/" + c + ":1", "imageID": "", "containerID": "containerd://" + uid + "-" + c,
			"state": map[string]any{"running": map[string]any{"startedAt": "2026-12-04T10:00:00Z"}}})
	}
	return map[string]any{
		"metadata": map[string]any{"name": name, "namespace": ns, "uid": uid,
			"labels":      map[string]any{"app": name, "app.kubernetes.io/part-of": "ferry-test"},
			"annotations": map[string]any{"example.com/scrape": "true"},
			"ownerReferences": []any{map[string]any{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": name + "-rs",
				"uid": uid + "-owner", "controller": true}},
		},
		"spec": map[string]any{"nodeName": node, "containers": cs,
			"initContainers": []any{map[string]any{"name": "init", "image": "registry.example/init:1"}}},
		"status": map[string]any{"phase": "Running", "podIP": "10.1.0.1", "hostIP": "192.168.0.1",
			"conditions":            []any{map[string]any{"type": "Ready", "status": "True"}},
			"containerStatuses":     statuses,
			"initContainerStatuses": []any{map[string]any{"name": "init", "ready": false, "restartCount": 0, "image": "registry.example/init:1", "imageID": "", "containerID": "containerd://" + uid + "-init"}},
		},
	}
}

func node(name string) map[string]any {
	return map[string]any{
		"metadata": map[string]any{"name": name, "uid": "node-" + name,
			"labels":      map[string]any{"kubernetes.io/hostname": name, "topology.kubernetes.io/zone": "z1"},
			"annotations": map[string]any{"node.example.com/rack": "r7"}},
		"status": map[string]any{"addresses": []any{map[string]any{"type": "InternalIP", "address": "192.168.0.1"},
			map[string]any{"type": "Hostname", "address": name}},
			"daemonEndpoints": map[string]any{"kubeletEndpoint": map[string]any{"Port": 10250}}},
	}
}

func service(ns, name string) map[string]any {
	return map[string]any{
		"metadata": map[string]any{"name": name, "namespace": ns, "uid": "svc-" + name,
			"labels": map[string]any{"app": name}, "annotations": map[string]any{"a": "b"}},
		"spec": map[string]any{"type": "ClusterIP", "clusterIP": "10.96.0.10",
			"ports": []any{map[string]any{"name": "http", "port": 80, "protocol": "TCP"},
				map[string]any{"name": "grpc", "port": 9000, "protocol": "TCP"}}},
	}
}

func ingress(ns, name string) map[string]any {
	return map[string]any{
		"metadata": map[string]any{"name": name, "namespace": ns, "uid": "ing-" + name, "labels": map[string]any{"app": name}},
		"spec": map[string]any{"ingressClassName": "nginx", "rules": []any{map[string]any{"host": "web.example",
			"http": map[string]any{"paths": []any{map[string]any{"path": "/", "pathType": "Prefix",
				"backend": map[string]any{"service": map[string]any{"name": name, "port": map[string]any{"number": 80}}}}}}}}},
	}
}

// churn changes every pod once, setting the annotation churn to gen.
func (f *fakeAPI) churn(gen int) {
	f.mu.Lock()
	var all []map[string]any
	for _, o := range f.objs["pods"] {
		all = append(all, o)
	}
	f.mu.Unlock()
	for _, o := range all {
		o = clone(o)
		o["metadata"].(map[string]any)["annotations"].(map[string]any)["churn"] = strconv.Itoa(gen)
		f.put("pods", o)
	}
}

// targetRef is the reference of an endpoint to pod name of ns.
func targetRef(ns, name string) map[string]any {
	return map[string]any{"kind": "Pod", "namespace": ns, "name": name, "uid": "uid-" + name}
}

// endpoints returns the Endpoints of service name, as the endpoints
// controller writes them: pod web ready, pod db not ready, port 8080.
func endpoints(ns, name string) map[string]any {
	return map[string]any{
		"metadata": map[string]any{"name": name, "namespace": ns, "uid": "ep-" + name,
			"labels": map[string]any{"app": name}, "annotations": map[string]any{"ep.example.com/a": "b"}},
		"subsets": []any{map[string]any{
			"addresses": []any{map[string]any{"ip": "10.1.0.1", "nodeName": "node-a", "targetRef": targetRef(ns, "web")}},
			"notReadyAddresses": []any{map[string]any{"ip": "10.1.0.3", "hostname": "db-0", "nodeName": "node-b",
				"targetRef": targetRef(ns, "db")}},
			"ports": []any{map[string]any{"name": "http", "port": 8080, "protocol": "TCP", "appProtocol": "http"}},
		}},
	}
}

// endpointSlice returns an EndpointSlice of service svc, as the endpoint
// slice controller writes it: pod web ready, pod db terminating.
func endpointSlice(ns, name, svc string) map[string]any {
	ready, notReady := true, false
	return map[string]any{
		"metadata": map[string]any{"name": name, "namespace": ns, "uid": "eps-" + name,
			"labels":      map[string]any{"kubernetes.io/service-name": svc, "endpointslice.kubernetes.io/managed-by": "test"},
			"annotations": map[string]any{"eps.example.com/a": "b"}},
		"addressType": "IPv4",
		"endpoints": []any{
			map[string]any{"addresses": []any{"10.1.0.1"}, "nodeName": "node-a", "zone": "z1",
				"conditions": map[string]any{"ready": ready, "serving": ready, "terminating": notReady},
				"targetRef":  targetRef(ns, "web")},
			map[string]any{"addresses": []any{"10.1.0.3"}, "hostname": "db-0", "nodeName": "node-b",
				"conditions": map[string]any{"ready": notReady, "serving": ready, "terminating": ready},
				"targetRef":  targetRef(ns, "db")},
		},
		"ports": []any{map[string]any{"name": "http", "port": 8080, "protocol": "TCP", "appProtocol": "http"}},
	}
}
