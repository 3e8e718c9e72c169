// Command k8s-schemas writes JSON Schemas of the Kubernetes kinds the Helm chart renders, derived from the Go
// types of k8s.io/api (the API server's own types), in the file layout kubeconform reads
// (`{{ .ResourceKind }}{{ .KindSuffix }}.json`). kubeconform's usual schemas are downloaded from the web at check
// time; here they are built from the Go module proxy like every other tool of the stack.
//
// Objects are closed (additionalProperties: false), so a misspelt field fails; a field whose JSON tag has no
// omitempty/omitzero is required; types with their own JSON form (quantities, int-or-string, times) get the
// form they marshal to.
//
//	go run . OUT_DIR
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
)

type kind struct {
	group, version, name string
	obj                  any
}

var kinds = []kind{
	{"apps", "v1", "Deployment", appsv1.Deployment{}},
	{"", "v1", "Service", corev1.Service{}},
	{"", "v1", "ConfigMap", corev1.ConfigMap{}},
	{"", "v1", "Secret", corev1.Secret{}},
	{"", "v1", "ServiceAccount", corev1.ServiceAccount{}},
	{"batch", "v1", "Job", batchv1.Job{}},
	{"policy", "v1", "PodDisruptionBudget", policyv1.PodDisruptionBudget{}},
	{"autoscaling", "v2", "HorizontalPodAutoscaler", autoscalingv2.HorizontalPodAutoscaler{}},
	{"networking.k8s.io", "v1", "NetworkPolicy", networkingv1.NetworkPolicy{}},
}

type schema = map[string]any

var (
	quantityType = reflect.TypeOf(resource.Quantity{})
	intOrString  = reflect.TypeOf(intstr.IntOrString{})
	timeType     = reflect.TypeOf(metav1.Time{})
	microTime    = reflect.TypeOf(metav1.MicroTime{})
	duration     = reflect.TypeOf(metav1.Duration{})
	rawExtension = reflect.TypeOf(runtime.RawExtension{})
	marshaler    = reflect.TypeOf((*json.Marshaler)(nil)).Elem()
)

// definitions are shared by reference ($ref), so recursive types terminate.
type builder struct{ defs map[string]schema }

func defName(t reflect.Type) string {
	return strings.NewReplacer("/", ".", "-", "_").Replace(t.PkgPath()) + "." + t.Name()
}

func (b *builder) of(t reflect.Type) schema {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t {
	case quantityType:
		return schema{"oneOf": []any{schema{"type": "string", "pattern": `^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$`}, schema{"type": "number"}}}
	case intOrString:
		return schema{"oneOf": []any{schema{"type": "string"}, schema{"type": "integer"}}}
	case timeType, microTime:
		return schema{"type": []any{"string", "null"}, "format": "date-time"}
	case duration:
		return schema{"type": "string"}
	case rawExtension:
		return schema{}
	}
	switch t.Kind() {
	case reflect.String:
		return schema{"type": "string"}
	case reflect.Bool:
		return schema{"type": "boolean"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return schema{"type": "integer"}
	case reflect.Float32, reflect.Float64:
		return schema{"type": "number"}
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			return schema{"type": "string", "contentEncoding": "base64"}
		}
		return schema{"type": []any{"array", "null"}, "items": b.of(t.Elem())}
	case reflect.Map:
		return schema{"type": []any{"object", "null"}, "additionalProperties": b.of(t.Elem())}
	case reflect.Interface:
		return schema{}
	case reflect.Struct:
		// A type with a JSON form of its own that is not one of the above: accept what it may marshal to.
		if t.Implements(marshaler) || reflect.PointerTo(t).Implements(marshaler) {
			return schema{}
		}
		name := defName(t)
		if _, ok := b.defs[name]; !ok {
			b.defs[name] = schema{} // placeholder while the fields are built (recursion)
			props, required := schema{}, []string{}
			b.fields(t, props, &required)
			s := schema{"type": "object", "properties": props, "additionalProperties": false}
			if len(required) > 0 {
				s["required"] = required
			}
			b.defs[name] = s
		}
		return schema{"$ref": "#/definitions/" + name}
	}
	panic(fmt.Sprintf("no schema for %s", t))
}

func (b *builder) fields(t reflect.Type, props schema, required *[]string) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		parts := strings.Split(tag, ",")
		name := parts[0]
		inline := false
		optional := false
		for _, p := range parts[1:] {
			switch p {
			case "inline":
				inline = true
			case "omitempty", "omitzero":
				optional = true
			}
		}
		if inline || (name == "" && f.Anonymous) {
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			b.fields(ft, props, required)
			continue
		}
		if name == "" {
			name = f.Name
		}
		props[name] = b.of(f.Type)
		if !optional {
			*required = append(*required, name)
		}
	}
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: k8s-schemas OUT_DIR")
		os.Exit(2)
	}
	out := os.Args[1]
	if err := os.MkdirAll(out, 0o755); err != nil {
		panic(err)
	}
	for _, k := range kinds {
		b := &builder{defs: map[string]schema{}}
		root := b.of(reflect.TypeOf(k.obj))
		apiVersion := k.version
		suffix := "-" + k.version
		if k.group != "" {
			apiVersion = k.group + "/" + k.version
			suffix = "-" + strings.Split(k.group, ".")[0] + "-" + k.version
		}
		top := b.defs[strings.TrimPrefix(root["$ref"].(string), "#/definitions/")]
		props := top["properties"].(schema)
		props["apiVersion"] = schema{"type": "string", "enum": []any{apiVersion}}
		props["kind"] = schema{"type": "string", "enum": []any{k.name}}
		doc := schema{
			"$schema":     "http://json-schema.org/draft-07/schema#",
			"description": fmt.Sprintf("%s %s, from the Go types of k8s.io/api", apiVersion, k.name),
			"definitions": b.defs,
			"$ref":        root["$ref"],
		}
		// The root's own object, with apiVersion and kind required.
		req, _ := top["required"].([]string)
		top["required"] = append(req, "apiVersion", "kind")
		data, err := json.MarshalIndent(doc, "", "  ")
		if err != nil {
			panic(err)
		}
		file := filepath.Join(out, strings.ToLower(k.name)+suffix+".json")
		if err := os.WriteFile(file, data, 0o644); err != nil {
			panic(err)
		}
	}
	fmt.Fprintf(os.Stderr, "[k8s-schemas] %d kinds in %s\n", len(kinds), out)
}
