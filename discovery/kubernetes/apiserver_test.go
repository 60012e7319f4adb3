package kubernetes

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	k8s "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/ferrydev/ferry/discovery/kubernetes/kubetest"
	"github.com/prometheus/prometheus/model/labels"
)

func adminClient(t *testing.T, s *kubetest.APIServer) *k8s.Clientset {
	t.Helper()
	c, err := k8s.NewForConfig(&rest.Config{Host: s.URL, BearerToken: kubetest.AdminToken,
		TLSClientConfig: rest.TLSClientConfig{Insecure: true}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func createPod(t *testing.T, c *k8s.Clientset, ns, name, node, ip string, containers ...string) {
	t.Helper()
	ctx := context.Background()
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns,
		Labels: map[string]string{"app": name}, Annotations: map[string]string{"example.com/scrape": "true"}},
		Spec: corev1.PodSpec{NodeName: node,
			InitContainers: []corev1.Container{{Name: "init", Image: "registry.example/init:1"}}}}
	for i, n := range containers {
		ctr := corev1.Container{Name: n, Image: "registry.example/" + n + ":1"}
		if i == 0 {
			ctr.Ports = []corev1.ContainerPort{{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP},
				{Name: "metrics", ContainerPort: 9090, Protocol: corev1.ProtocolTCP}}
		}
		p.Spec.Containers = append(p.Spec.Containers, ctr)
	}
	p, err := c.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p.Status.Phase = corev1.PodRunning
	p.Status.PodIP, p.Status.PodIPs = ip, []corev1.PodIP{{IP: ip}}
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
	if _, err := c.CoreV1().Pods(ns).UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func createNode(t *testing.T, c *k8s.Clientset, name string) {
	t.Helper()
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name,
		Labels:      map[string]string{"topology.kubernetes.io/zone": "z1"},
		Annotations: map[string]string{"node.example.com/rack": "r7"}}}
	n, err := c.CoreV1().Nodes().Create(context.Background(), n, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// What kubelet reports; Prometheus skips nodes without an address.
	n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "192.168.0.1"},
		{Type: corev1.NodeHostName, Address: name}}
	n.Status.DaemonEndpoints.KubeletEndpoint.Port = 10250
	if _, err := c.CoreV1().Nodes().UpdateStatus(context.Background(), n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// createServices creates services default/web and kube-system/dns, the
// Endpoints and an EndpointSlice of web (as their controllers would: web's
// pod ready, db's not), and an Ingress to web.
func createServices(t *testing.T, c *k8s.Clientset) {
	t.Helper()
	ctx := context.Background()
	for _, sv := range []struct{ ns, name string }{{"default", "web"}, {"kube-system", "dns"}} {
		svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: sv.name, Namespace: sv.ns,
			Labels: map[string]string{"app": sv.name}, Annotations: map[string]string{"a": "b"}},
			Spec: corev1.ServiceSpec{Selector: map[string]string{"app": sv.name}, Ports: []corev1.ServicePort{
				{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(8080)}}}}
		if sv.name == "web" {
			svc.Spec.Ports = append(svc.Spec.Ports, corev1.ServicePort{Name: "grpc", Port: 9000, Protocol: corev1.ProtocolTCP})
		}
		if _, err := c.CoreV1().Services(sv.ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	ref := func(name string) *corev1.ObjectReference {
		p, err := c.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return &corev1.ObjectReference{Kind: "Pod", Namespace: "default", Name: name, UID: p.UID}
	}
	web, db := ref("web"), ref("db")
	nodeA, nodeB := "node-a", "node-b"
	http := "http"
	//lint:ignore SA1019 the endpoints role reads the deprecated core/v1 Endpoints
	ep := &corev1.Endpoints{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", Labels: map[string]string{"app": "web"}},
		Subsets: []corev1.EndpointSubset{{
			Addresses:         []corev1.EndpointAddress{{IP: "10.1.0.1", NodeName: &nodeA, TargetRef: web}},
			NotReadyAddresses: []corev1.EndpointAddress{{IP: "10.1.0.3", Hostname: "db-0", NodeName: &nodeB, TargetRef: db}},
			Ports:             []corev1.EndpointPort{{Name: "http", Port: 8080, Protocol: corev1.ProtocolTCP, AppProtocol: &http}},
		}}}
	if _, err := c.CoreV1().Endpoints("default").Create(ctx, ep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	yes, no := true, false
	port, tcp, zone := int32(8080), corev1.ProtocolTCP, "z1"
	eps := &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Name: "web-x1", Namespace: "default",
		Labels: map[string]string{discoveryv1.LabelServiceName: "web"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{
			{Addresses: []string{"10.1.0.1"}, NodeName: &nodeA, Zone: &zone, TargetRef: web,
				Conditions: discoveryv1.EndpointConditions{Ready: &yes, Serving: &yes, Terminating: &no}},
			{Addresses: []string{"10.1.0.3"}, Hostname: &db.Name, NodeName: &nodeB, TargetRef: db,
				Conditions: discoveryv1.EndpointConditions{Ready: &no, Serving: &yes, Terminating: &yes}},
		},
		Ports: []discoveryv1.EndpointPort{{Name: &http, Port: &port, Protocol: &tcp, AppProtocol: &http}}}
	if _, err := c.DiscoveryV1().EndpointSlices("default").Create(ctx, eps, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	class, prefix := "nginx", networkingv1.PathTypePrefix
	ing := &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", Labels: map[string]string{"app": "web"}},
		Spec: networkingv1.IngressSpec{IngressClassName: &class, Rules: []networkingv1.IngressRule{{Host: "web.example",
			IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: []networkingv1.HTTPIngressPath{{
				Path: "/", PathType: &prefix, Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
					Name: "web", Port: networkingv1.ServiceBackendPort{Number: 80}}}}}}}}}}}
	if _, err := c.NetworkingV1().Ingresses("default").Create(ctx, ing, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestAPIServer runs against a real kube-apiserver (with etcd): the same
// labels as Prometheus's kubernetes SD for every role (with NodeName,
// namespaces, label selectors and node metadata), RBAC refusal and grant
// (cluster-wide, and in one namespace of two), and the server going away
// and coming back.
func TestAPIServer(t *testing.T) {
	s := kubetest.Start(t)
	c := adminClient(t, s)
	createNode(t, c, "node-a")
	createNode(t, c, "node-b")
	createPod(t, c, "default", "web", "node-a", "10.1.0.1", "web", "sidecar")
	createPod(t, c, "kube-system", "dns", "node-a", "10.1.0.2", "dns")
	createPod(t, c, "default", "db", "node-b", "10.1.0.3", "db")

	createServices(t, c)

	t.Run("differential", func(t *testing.T) {
		kc := s.Kubeconfig(t, kubetest.AdminToken)
		for _, tc := range []struct {
			d    *Discoverer
			want int
		}{
			{&Discoverer{AttachMetadata: AttachMetadata{Node: true}}, 10},
			{&Discoverer{NodeName: "node-a", AttachMetadata: AttachMetadata{Node: true}}, 7},
			{&Discoverer{Namespaces: []string{"kube-system"}, Selectors: []Selector{{Role: RolePod, Label: "app=dns"}}}, 3},
			{&Discoverer{Role: RoleNode}, 2},
			{&Discoverer{Role: RoleService}, 4}, // and default/kubernetes, the API server's own
			{&Discoverer{Role: RoleService, Selectors: []Selector{{Role: RoleService, Label: "app=web"}}}, 2},
			{&Discoverer{Role: RoleIngress}, 1},
			// web:8080 (ready), db:8080 (not ready), and the pods' other
			// port 9090 (db's unless NodeName leaves its pod out).
			{&Discoverer{Role: RoleEndpoints, AttachMetadata: AttachMetadata{Node: true}}, 4},
			{&Discoverer{Role: RoleEndpoints, NodeName: "node-a", Namespaces: []string{"default"}}, 3},
			{&Discoverer{Role: RoleEndpointSlice, AttachMetadata: AttachMetadata{Node: true}}, 4},
			{&Discoverer{Role: RoleEndpointSlice, NodeName: "node-a"}, 3},
		} {
			d := tc.d
			d.KubeConfig, d.UpdateDelay = kc, 20*time.Millisecond
			t.Run(fmt.Sprintf("%s-%s-%v-%d", d.Role, d.NodeName, d.Namespaces, len(d.Selectors)), func(t *testing.T) {
				r := run(t, d)
				got := r.waitSet(t, "targets", func(s []labels.Labels) bool { return len(s) == tc.want })
				cfg, _ := d.SDConfig()
				if w := prometheusTargets(t, cfg, tc.want); !equalSets(got, w) {
					t.Fatalf("labels differ from Prometheus's:\nferry:\n%v\nprometheus:\n%v", sortSets(got), sortSets(w))
				}
			})
		}
	})

	t.Run("rbac", func(t *testing.T) {
		r := run(t, &Discoverer{KubeConfig: s.Kubeconfig(t, kubetest.AgentToken), NodeName: "node-a",
			UpdateDelay: 20 * time.Millisecond, CheckInterval: 100 * time.Millisecond})
		r.waitHealth(t, "Failing with the API server's message", failing("403", `cannot list resource "pods"`))
		ctx := context.Background()
		if _, err := c.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "pods"},
			Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list", "watch"}}}},
			metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "pods"},
			RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "pods"},
			Subjects: []rbacv1.Subject{{Kind: "User", Name: kubetest.AgentUser}}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		r.waitSet(t, "targets once granted", hasPods("default/web", "kube-system/dns"))
		r.waitHealth(t, "Healthy", healthy)
	})

	t.Run("rbac-namespaces", func(t *testing.T) {
		ctx := context.Background()
		grant := func(ns string) {
			t.Helper()
			if _, err := c.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "reader"},
				Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list", "watch"}}}},
				metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			if _, err := c.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "reader"},
				RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "reader"},
				Subjects: []rbacv1.Subject{{Kind: "User", Name: kubetest.ReaderUser}}}, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		grant("default")
		r := run(t, &Discoverer{KubeConfig: s.Kubeconfig(t, kubetest.ReaderToken), Namespaces: []string{"default", "kube-system"},
			UpdateDelay: 20 * time.Millisecond, CheckInterval: 100 * time.Millisecond})
		r.waitSet(t, "the pods of the granted namespace", hasPods("default/db", "default/web"))
		r.waitHealth(t, "Failing, naming the other namespace", failing(`list pods in namespace "kube-system": 403`,
			`cannot list resource "pods" in API group "" in the namespace "kube-system"`))
		grant("kube-system")
		r.waitSet(t, "the pods of both namespaces", hasPods("default/db", "default/web", "kube-system/dns"))
		r.waitHealth(t, "Healthy", healthy)
	})

	t.Run("server-gone", func(t *testing.T) {
		r := run(t, &Discoverer{KubeConfig: s.Kubeconfig(t, kubetest.AdminToken), NodeName: "node-a",
			UpdateDelay: 20 * time.Millisecond, CheckInterval: 100 * time.Millisecond})
		r.waitSet(t, "first set", hasPods("default/web", "kube-system/dns"))
		s.Stop()
		r.waitHealth(t, "Failing", failing("unreachable"))
		if set, _ := r.last(); !hasPods("default/web", "kube-system/dns")(set) {
			t.Fatalf("set changed while the server was gone: %v", pods(set))
		}
		s.Start()
		createPod(t, adminClient(t, s), "default", "api", "node-a", "10.1.0.4", "api")
		r.waitSet(t, "pod created after the restart", hasPods("default/api", "default/web", "kube-system/dns"))
		r.waitHealth(t, "Healthy", healthy)
	})
}

func equalSets(a, b []labels.Labels) bool {
	a, b = sortSets(a), sortSets(b)
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !labels.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// BenchmarkMemoryAPIServer is BenchmarkMemory against a real
// kube-apiserver: 10,000 pods on 100 nodes are created first, and each
// churn patches all of them (which takes a while). Opt-in: FERRY_K8S_BENCH=1; run with -benchtime=1x.
func BenchmarkMemoryAPIServer(b *testing.B) {
	if os.Getenv("FERRY_K8S_BENCH") != "1" {
		b.Skip("set FERRY_K8S_BENCH=1")
	}
	s := kubetest.Start(b)
	c, err := k8s.NewForConfig(&rest.Config{Host: s.URL, BearerToken: kubetest.AdminToken, QPS: 500, Burst: 1000,
		TLSClientConfig: rest.TLSClientConfig{Insecure: true}})
	if err != nil {
		b.Fatal(err)
	}
	begin := time.Now()
	parallel(b, 10000, func(i int) error {
		return createPodErr(c, fmt.Sprintf("ns-%d", i%50), fmt.Sprintf("pod-%d", i), fmt.Sprintf("node-%d", i%100),
			fmt.Sprintf("10.%d.%d.%d", i/65536, i/256%256, i%256), "app")
	})
	b.Logf("10,000 pods created in %v", time.Since(begin).Round(time.Second))
	gen := 0
	memoryRuns(b, memCluster{kubeconfig: s.Kubeconfig(b, kubetest.AdminToken),
		churn: func(b *testing.B, node string, n int) {
			gen++
			ctx := context.Background()
			all, err := c.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
			if err != nil {
				b.Fatal(err)
			}
			patch := []byte(fmt.Sprintf(`{"metadata":{"annotations":{"churn":"%d"}}}`, gen))
			parallel(b, len(all.Items), func(i int) error {
				p := &all.Items[i]
				_, err := c.CoreV1().Pods(p.Namespace).Patch(ctx, p.Name, types.MergePatchType, patch, metav1.PatchOptions{})
				return err
			})
			for i := range n {
				if err := createPodErr(c, "ns-0", fmt.Sprintf("churn-%d-%d", gen, i), node, fmt.Sprintf("10.200.%d.%d", gen, i), "app"); err != nil {
					b.Fatal(err)
				}
			}
		}})
}

// parallel calls f(0) to f(n-1) on 8 goroutines and fails b with the first
// error.
func parallel(b *testing.B, n int, f func(i int) error) {
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 8 {
				if err := f(i); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}
}

func createPodErr(c *k8s.Clientset, ns, name, node, ip string, ctrName string) error {
	ctx := context.Background()
	if _, err := c.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); err != nil {
		c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	}
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"app": name}},
		Spec: corev1.PodSpec{NodeName: node,
			InitContainers: []corev1.Container{{Name: "init", Image: "registry.example/init:1"}},
			Containers: []corev1.Container{{Name: ctrName, Image: "registry.example/app:1", Ports: []corev1.ContainerPort{
				{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP}, {Name: "metrics", ContainerPort: 9090, Protocol: corev1.ProtocolTCP}}}}}}
	p, err := c.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
	if err != nil {
		return err
	}
	p.Status.Phase = corev1.PodRunning
	p.Status.PodIP, p.Status.PodIPs = ip, []corev1.PodIP{{IP: ip}}
	_, err = c.CoreV1().Pods(ns).UpdateStatus(ctx, p, metav1.UpdateOptions{})
	return err
}
