package nodeagent

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/idharness/idharness/pkg/api/podidentity"
)

// Informers is the Lookup backed by client-go informers: the pods of one
// node indexed by IP, namespaces, and the pod identity objects.
type Informers struct {
	pods, ids, binds, excs cache.Indexer
	namespaces             cache.Store
	optIn                  labels.Selector
	// podsChanged fires at every pod event, once the pod store has it.
	podsChanged *signal
	// live reads the API server directly, for Live.
	live LiveClients
}

// LiveClients are what Live reads the API server with. Give them an HTTP
// client of their own (WithLiveClients), not the informers': the
// informers' watches hold their HTTP/2 connection open, and once a
// partition has left it hanging, every read on it hangs too until
// client-go's health check drops it (30 s idle + 15 s ping). Reset is
// called after a failed read to drop the live client's idle connections,
// so that a read after the partition's end dials anew rather than wait
// on a connection the partition left hanging (measured: tokens again
// 6.5 s after a 30 s cut's end, IDH-CHAOS-0016).
type LiveClients struct {
	Kube  kubernetes.Interface
	Dyn   dynamic.Interface
	Reset func()
}

// WithLiveClients returns the informers reading live through c.
func (i *Informers) WithLiveClients(c LiveClients) *Informers {
	cp := *i
	cp.live = c
	return &cp
}

const podIPIndex = "podIP"

// StartInformers starts the informers and waits (up to timeout) until
// they have synced. node limits pods to those on that node (empty: all);
// optIn selects the namespaces that get pod identity (nil or empty: all,
// as NMI does).
func StartInformers(ctx context.Context, kube kubernetes.Interface, dyn dynamic.Interface, node string, optIn labels.Selector, timeout time.Duration) (*Informers, error) {
	if optIn == nil {
		optIn = labels.Everything()
	}
	kf := informers.NewSharedInformerFactoryWithOptions(kube, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		if node != "" && o.FieldSelector == "" {
			o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", node).String()
		}
	}))
	podInf := kf.Core().V1().Pods().Informer()
	if err := podInf.AddIndexers(cache.Indexers{podIPIndex: podIPs}); err != nil {
		return nil, fmt.Errorf("pod IP index: %w", err)
	}
	// The informer updates its store before it hands the event to the
	// handlers, so a request woken by the signal finds the pod.
	podsChanged := newSignal()
	fire := func(any) { podsChanged.fire() }
	if _, err := podInf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: fire, UpdateFunc: func(_, obj any) { fire(obj) }, DeleteFunc: fire}); err != nil {
		return nil, fmt.Errorf("pod event handler: %w", err)
	}
	// Namespaces are cluster-wide: a separate factory without the node filter.
	nsInf := informers.NewSharedInformerFactory(kube, 0).Core().V1().Namespaces().Informer()
	df := dynamicinformer.NewDynamicSharedInformerFactory(dyn, 0)
	ids := df.ForResource(podidentity.AzureIdentityGVR).Informer()
	binds := df.ForResource(podidentity.AzureIdentityBindingGVR).Informer()
	excs := df.ForResource(podidentity.AzurePodIdentityExceptionGVR).Informer()
	// Dynamic informers come with the namespace index fromIndex uses.
	kf.Start(ctx.Done())
	df.Start(ctx.Done())
	go nsInf.Run(ctx.Done())
	syncCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if !cache.WaitForCacheSync(syncCtx.Done(), podInf.HasSynced, nsInf.HasSynced, ids.HasSynced, binds.HasSynced, excs.HasSynced) {
		return nil, fmt.Errorf("informers not synced within %s: are the aadpodidentity.k8s.io CRDs installed and may the agent's service account list pods, namespaces and them?", timeout)
	}
	return &Informers{pods: podInf.GetIndexer(), namespaces: nsInf.GetStore(), ids: ids.GetIndexer(), binds: binds.GetIndexer(), excs: excs.GetIndexer(), optIn: optIn,
		podsChanged: podsChanged, live: LiveClients{Kube: kube, Dyn: dyn}}, nil
}

// podIPs indexes pods that own their IPs: not host-network pods (they
// have the node's IP and are never redirected) and not finished pods
// (their IPs may already belong to a new pod).
func podIPs(obj any) ([]string, error) {
	p, ok := obj.(*corev1.Pod)
	if !ok || p.Spec.HostNetwork || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
		return nil, nil
	}
	var out []string
	for _, ip := range p.Status.PodIPs {
		out = append(out, ip.IP)
	}
	if len(out) == 0 && p.Status.PodIP != "" {
		out = append(out, p.Status.PodIP)
	}
	return out, nil
}

// PodByIP implements Lookup. When two pods claim an IP (a deleted pod not
// yet gone), the newest wins.
func (i *Informers) PodByIP(ip string) (Pod, bool) {
	objs, err := i.pods.ByIndex(podIPIndex, ip)
	if err != nil || len(objs) == 0 {
		return Pod{}, false
	}
	sort.Slice(objs, func(a, b int) bool {
		return objs[a].(*corev1.Pod).CreationTimestamp.After(objs[b].(*corev1.Pod).CreationTimestamp.Time)
	})
	p := objs[0].(*corev1.Pod)
	return Pod{Namespace: p.Namespace, Name: p.Name, Labels: p.Labels}, true
}

// PodsChanged implements PodNotifier.
func (i *Informers) PodsChanged() <-chan struct{} { return i.podsChanged.wait() }

// signal wakes every waiter at once: fire closes the channel that wait
// handed out and starts a new one.
type signal struct {
	mu sync.Mutex
	ch chan struct{}
}

func newSignal() *signal { return &signal{ch: make(chan struct{})} }

func (s *signal) wait() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ch
}

func (s *signal) fire() {
	s.mu.Lock()
	defer s.mu.Unlock()
	close(s.ch)
	s.ch = make(chan struct{})
}

// OptedIn implements Lookup.
func (i *Informers) OptedIn(namespace string) bool {
	if i.optIn.Empty() {
		return true
	}
	obj, ok, err := i.namespaces.GetByKey(namespace)
	if err != nil || !ok {
		return false
	}
	return i.optIn.Matches(labels.Set(obj.(*corev1.Namespace).Labels))
}

// Identities implements Lookup.
func (i *Informers) Identities(namespace string) []Identity {
	return fromIndex(i.ids, namespace, IdentityFrom)
}

// Bindings implements Lookup.
func (i *Informers) Bindings(namespace string) []Binding {
	return fromIndex(i.binds, namespace, BindingFrom)
}

// Live implements Lookup: the pod, then the identities and bindings of
// its namespace, each read from the API server (a quorum read).
func (i *Informers) Live(ctx context.Context, namespace, pod string) (Pod, []Identity, []Binding, error) {
	p, ids, binds, err := i.readLive(ctx, namespace, pod)
	if err != nil && i.live.Reset != nil {
		i.live.Reset()
	}
	return p, ids, binds, err
}

func (i *Informers) readLive(ctx context.Context, namespace, pod string) (Pod, []Identity, []Binding, error) {
	p, err := i.live.Kube.CoreV1().Pods(namespace).Get(ctx, pod, metav1.GetOptions{})
	if err != nil {
		return Pod{}, nil, nil, fmt.Errorf("get pod %s/%s: %w", namespace, pod, err)
	}
	ids, err := liveList(ctx, i.live.Dyn, podidentity.AzureIdentityGVR, namespace, IdentityFrom)
	if err != nil {
		return Pod{}, nil, nil, err
	}
	binds, err := liveList(ctx, i.live.Dyn, podidentity.AzureIdentityBindingGVR, namespace, BindingFrom)
	if err != nil {
		return Pod{}, nil, nil, err
	}
	return Pod{Namespace: p.Namespace, Name: p.Name, Labels: p.Labels}, ids, binds, nil
}

func liveList[T any](ctx context.Context, dyn dynamic.Interface, gvr schema.GroupVersionResource, namespace string, conv func(*unstructured.Unstructured) T) ([]T, error) {
	l, err := dyn.Resource(gvr).Namespace(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list %s in %s: %w", gvr.Resource, namespace, err)
	}
	out := make([]T, 0, len(l.Items))
	for k := range l.Items {
		out = append(out, conv(&l.Items[k]))
	}
	return out, nil
}

// Exceptions implements Lookup.
func (i *Informers) Exceptions(namespace string) []Exception {
	return fromIndex(i.excs, namespace, ExceptionFrom)
}

func fromIndex[T any](idx cache.Indexer, namespace string, conv func(*unstructured.Unstructured) T) []T {
	objs, err := idx.ByIndex(cache.NamespaceIndex, namespace)
	if err != nil {
		return nil
	}
	out := make([]T, 0, len(objs))
	for _, o := range objs {
		if u, ok := o.(*unstructured.Unstructured); ok {
			out = append(out, conv(u))
		}
	}
	return out
}
