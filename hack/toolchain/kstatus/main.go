// kstatus prints what sigs.k8s.io/cli-utils' kstatus library (the status logic of kpt, Flux and
// `kubectl apply --prune`'s successors) computes for one object: its status (InProgress, Current,
// Failed, Terminating, NotFound, Unknown) and message.
//
// Usage:
//
//	kstatus [-o text|json] < object.json              the object as JSON (or YAML) on stdin
//	kstatus [-kubeconfig F] [-n NS] [-o ...] TYPE NAME  the object read from the cluster
//
// TYPE is what kubectl takes: a resource, kind or short name, optionally with its group
// (modeldeployments.modelship.dev, trainingjob, deploy).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type output struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

func main() {
	kubeconfig := flag.String("kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig file (for TYPE NAME)")
	namespace := flag.String("n", "", "namespace (for TYPE NAME; default: the kubeconfig's)")
	format := flag.String("o", "text", "output: text (STATUS<tab>MESSAGE) or json")
	flag.Parse()

	var obj *unstructured.Unstructured
	var err error
	switch flag.NArg() {
	case 0:
		obj, err = fromReader(os.Stdin)
	case 2:
		obj, err = fromCluster(*kubeconfig, *namespace, flag.Arg(0), flag.Arg(1))
	default:
		err = fmt.Errorf("usage: kstatus [flags] [TYPE NAME] (no arguments: the object on stdin)")
	}
	if err != nil && apierrors.IsNotFound(err) {
		print(*format, output{Status: string(status.NotFoundStatus), Message: err.Error()})
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "kstatus:", err)
		os.Exit(2)
	}
	res, err := status.Compute(obj)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kstatus:", err)
		os.Exit(1)
	}
	print(*format, output{Status: string(res.Status), Message: res.Message})
}

func print(format string, out output) {
	if format == "json" {
		_ = json.NewEncoder(os.Stdout).Encode(out)
		return
	}
	fmt.Printf("%s\t%s\n", out.Status, out.Message)
}

func fromReader(r io.Reader) (*unstructured.Unstructured, error) {
	raw, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	if raw, err = yaml.ToJSON(raw); err != nil {
		return nil, fmt.Errorf("reading the object: %w", err)
	}
	// apimachinery's JSON keeps integers int64, as the library's accessors expect.
	obj := &unstructured.Unstructured{}
	if err := utiljson.Unmarshal(raw, &obj.Object); err != nil {
		return nil, fmt.Errorf("reading the object: %w", err)
	}
	if obj.Object == nil {
		return nil, fmt.Errorf("reading the object: no object on stdin")
	}
	return obj, nil
}

func fromCluster(kubeconfig, namespace, kind, name string) (*unstructured.Unstructured, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = kubeconfig
	loader := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{})
	config, err := loader.ClientConfig()
	if err != nil {
		return nil, err
	}
	if namespace == "" {
		if namespace, _, err = loader.Namespace(); err != nil {
			return nil, err
		}
	}
	disco, err := discovery.NewDiscoveryClientForConfig(config)
	if err != nil {
		return nil, err
	}
	mapper := restmapper.NewShortcutExpander(
		restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(disco)), disco, nil)
	gvr, err := resolve(mapper, kind)
	if err != nil {
		return nil, err
	}
	mapping, err := mapper.RESTMapping(schema.GroupKind{Group: gvr.Group, Kind: mustKind(mapper, gvr)}, gvr.Version)
	if err != nil {
		return nil, err
	}
	client, err := dynamic.NewForConfig(config)
	if err != nil {
		return nil, err
	}
	resource := client.Resource(mapping.Resource)
	if mapping.Scope.Name() == "namespace" {
		return resource.Namespace(namespace).Get(context.Background(), name, metav1.GetOptions{})
	}
	return resource.Get(context.Background(), name, metav1.GetOptions{})
}

// resolve turns "trainingjob", "trainingjobs.modelship.dev" or "md" into a resource.
func resolve(mapper interface {
	ResourceFor(schema.GroupVersionResource) (schema.GroupVersionResource, error)
}, arg string) (schema.GroupVersionResource, error) {
	full, partial := schema.ParseResourceArg(arg)
	if full != nil {
		if gvr, err := mapper.ResourceFor(*full); err == nil {
			return gvr, nil
		}
	}
	return mapper.ResourceFor(partial.WithVersion(""))
}

func mustKind(mapper interface {
	KindFor(schema.GroupVersionResource) (schema.GroupVersionKind, error)
}, gvr schema.GroupVersionResource) string {
	gvk, err := mapper.KindFor(gvr)
	if err != nil {
		return ""
	}
	return gvk.Kind
}
