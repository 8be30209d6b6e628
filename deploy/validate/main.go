// Command k8s-validate decodes every object of Kubernetes manifests strictly against the
// API types of k8s.io/api (through client-go's scheme): an unknown kind, an unknown or
// duplicated field, or a value of the wrong type is an error naming the document.
//
// Usage: k8s-validate [file ...]   (no file, or "-": standard input)
//
// Each object prints one line, "ok <apiVersion> <kind> <namespace>/<name>" or
// "error <source>#<n> <kind>/<name>: <reason>"; the exit status is 1 if any failed, 2 if
// the input could not be read.
package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/json"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"
	sigyaml "sigs.k8s.io/yaml"
)

// strict decodes YAML into the registered Go types, failing on unknown and duplicate fields.
var strict = json.NewSerializerWithOptions(
	json.DefaultMetaFactory, scheme.Scheme, scheme.Scheme,
	json.SerializerOptions{Yaml: true, Strict: true},
)

// check validates one YAML document; it returns the object's description and an error.
func check(doc []byte) (string, error) {
	// The document's header first (for messages), through the strict YAML reader, which
	// also refuses duplicate keys.
	raw, err := sigyaml.YAMLToJSONStrict(doc)
	if err != nil {
		return "?", fmt.Errorf("not valid YAML: %w", err)
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(raw); err != nil {
		return "?", fmt.Errorf("not a Kubernetes object: %w", err)
	}
	what := fmt.Sprintf("%s %s %s/%s", u.GetAPIVersion(), u.GetKind(), u.GetNamespace(), u.GetName())
	gvk := u.GroupVersionKind()
	if !scheme.Scheme.Recognizes(gvk) {
		return what, fmt.Errorf("unknown kind %s (not a built-in API type)", gvk)
	}
	if u.GetName() == "" {
		return what, errors.New("metadata.name is empty")
	}
	obj, _, err := strict.Decode(doc, nil, nil)
	if err != nil {
		return what, err
	}
	if _, ok := obj.(runtime.Object); !ok {
		return what, errors.New("decoded to no object")
	}
	return what, nil
}

// validate checks every document of one stream; it returns the number that failed.
func validate(name string, r io.Reader, out io.Writer) (int, error) {
	reader := utilyaml.NewYAMLReader(bufio.NewReader(r))
	failed := 0
	for n := 1; ; n++ {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return failed, nil
		}
		if err != nil {
			return failed, fmt.Errorf("%s: %w", name, err)
		}
		if isEmpty(doc) {
			continue // a document of comments only (helm template's "# Source:" headers)
		}
		what, err := check(doc)
		if err != nil {
			failed++
			reason := strings.Join(strings.Fields(err.Error()), " ") // one line each
			fmt.Fprintf(out, "error %s#%d %s: %s\n", name, n, what, reason)
			continue
		}
		fmt.Fprintf(out, "ok %s\n", what)
	}
}

// isEmpty: nothing but blank lines and comments.
func isEmpty(doc []byte) bool {
	for _, line := range bytes.Split(doc, []byte("\n")) {
		t := strings.TrimSpace(string(line))
		if t != "" && t != "---" && !strings.HasPrefix(t, "#") {
			return false
		}
	}
	return true
}

func main() {
	files := os.Args[1:]
	if len(files) == 0 {
		files = []string{"-"}
	}
	failed := 0
	for _, name := range files {
		var r io.Reader = os.Stdin
		if name != "-" {
			f, err := os.Open(name)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(2)
			}
			defer f.Close()
			r = f
		}
		n, err := validate(name, r, os.Stdout)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		failed += n
	}
	if failed > 0 {
		fmt.Fprintf(os.Stderr, "k8s-validate: %d object(s) failed\n", failed)
		os.Exit(1)
	}
}
