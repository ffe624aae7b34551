package manifest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
)

// maxJSONDepth bounds nesting in manifests and envelopes; the schema needs 5.
const maxJSONDepth = 16

// checkJSON walks data token by token and rejects what encoding/json lets
// through: duplicate object keys, trailing data after the value, a value
// that is not an object, and nesting deeper than maxJSONDepth. It returns the
// first key not in allowed (exact, case-sensitive match; encoding/json alone
// matches keys case-insensitively), or "" when every key is known.
func checkJSON(data []byte, allowed map[string]bool) (unknown string, err error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	type frame struct {
		obj     bool
		wantKey bool
		keys    map[string]bool
	}
	var stack []*frame
	valueDone := func() {
		if n := len(stack); n > 0 && stack[n-1].obj {
			stack[n-1].wantKey = true
		}
	}
	first := true
	for {
		tok, err := dec.Token()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return "", errors.New("unexpected end of JSON input")
			}
			return "", err
		}
		if first {
			if d, ok := tok.(json.Delim); !ok || d != '{' {
				return "", errors.New("the document must be a JSON object")
			}
			first = false
		}
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{', '[':
				if len(stack) >= maxJSONDepth {
					return "", fmt.Errorf("JSON nested deeper than %d levels", maxJSONDepth)
				}
				f := &frame{obj: t == '{', wantKey: t == '{'}
				if f.obj {
					f.keys = make(map[string]bool)
				}
				stack = append(stack, f)
			case '}', ']':
				stack = stack[:len(stack)-1]
				valueDone()
			}
		case string:
			if n := len(stack); n > 0 && stack[n-1].obj && stack[n-1].wantKey {
				top := stack[n-1]
				if top.keys[t] {
					return "", fmt.Errorf("duplicate key %q", t)
				}
				top.keys[t] = true
				top.wantKey = false
				if unknown == "" && allowed != nil && !allowed[t] {
					unknown = t
				}
				continue
			}
			valueDone()
		default:
			valueDone()
		}
		if len(stack) == 0 {
			break
		}
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return "", errors.New("trailing data after the JSON object")
	}
	return unknown, nil
}

// jsonFields returns the JSON keys of t's exported fields, recursively.
func jsonFields(t reflect.Type) map[string]bool {
	out := make(map[string]bool)
	var walk func(reflect.Type)
	seen := make(map[reflect.Type]bool)
	walk = func(t reflect.Type) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct || seen[t] {
			return
		}
		seen[t] = true
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tag := f.Tag.Get("json")
			if !f.IsExported() || tag == "" || tag == "-" {
				continue
			}
			name, _, _ := strings.Cut(tag, ",")
			out[name] = true
			walk(f.Type)
		}
	}
	walk(t)
	return out
}
