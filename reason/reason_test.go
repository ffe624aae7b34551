package reason

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestEveryCodeIsRegistered parses every package of fwagent: each Code*
// constant must take its value from this package (reason.X) or be a
// registered string, and no Code field is set from a string literal.
func TestEveryCodeIsRegistered(t *testing.T) {
	named := regexp.MustCompile(`^Code[A-Z]`)
	fset := token.NewFileSet()
	seen := 0
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case ".git", "testdata", "node_modules":
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		inReason := filepath.Dir(path) == "."
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.GenDecl:
				if n.Tok != token.CONST {
					return true
				}
				for _, spec := range n.Specs {
					vs := spec.(*ast.ValueSpec)
					for i, name := range vs.Names {
						if i >= len(vs.Values) {
							continue
						}
						if inReason {
							if id, ok := vs.Type.(*ast.Ident); ok && id.Name == "Code" {
								seen++
								checkLiteral(t, fset, name.Name, vs.Values[i])
							}
							continue
						}
						if !named.MatchString(name.Name) {
							continue
						}
						seen++
						switch v := vs.Values[i].(type) {
						case *ast.BasicLit:
							checkLiteral(t, fset, name.Name, v)
						case *ast.SelectorExpr, *ast.CallExpr:
							if !refersToReason(v) {
								t.Errorf("%s: %s does not take its value from package reason", fset.Position(v.Pos()), name.Name)
							}
						default:
							t.Errorf("%s: %s: declare it as reason.X", fset.Position(v.Pos()), name.Name)
						}
					}
				}
			case *ast.KeyValueExpr:
				if k, ok := n.Key.(*ast.Ident); ok && k.Name == "Code" && !inReason {
					if lit, ok := n.Value.(*ast.BasicLit); ok && lit.Kind == token.STRING {
						t.Errorf("%s: Code set from the string %s: use a registered constant", fset.Position(lit.Pos()), lit.Value)
					}
				}
			case *ast.AssignStmt:
				for i, lhs := range n.Lhs {
					sel, ok := lhs.(*ast.SelectorExpr)
					if !ok || sel.Sel.Name != "Code" || i >= len(n.Rhs) {
						continue
					}
					if lit, ok := n.Rhs[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
						t.Errorf("%s: Code set from the string %s: use a registered constant", fset.Position(lit.Pos()), lit.Value)
					}
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if seen < len(registry) {
		t.Fatalf("found %d code constants, fewer than the %d registered: the walk missed packages", seen, len(registry))
	}
}

func checkLiteral(t *testing.T, fset *token.FileSet, name string, e ast.Expr) {
	t.Helper()
	lit, ok := e.(*ast.BasicLit)
	if !ok || lit.Kind != token.STRING {
		t.Errorf("%s: %s is not a string constant", fset.Position(e.Pos()), name)
		return
	}
	v, _ := strconv.Unquote(lit.Value)
	if _, ok := Lookup(Code(v)); !ok {
		t.Errorf("%s: %s = %q is not in the registry (reason/codes.go): add it with its meaning and advice", fset.Position(lit.Pos()), name, v)
	}
}

// refersToReason reports whether e is reason.X or a conversion of it.
func refersToReason(e ast.Expr) bool {
	switch e := e.(type) {
	case *ast.SelectorExpr:
		id, ok := e.X.(*ast.Ident)
		return ok && id.Name == "reason"
	case *ast.CallExpr:
		return len(e.Args) == 1 && refersToReason(e.Args[0])
	}
	return false
}

// TestEveryCodeHasMeaningAndAdvice keeps the registry complete.
func TestEveryCodeHasMeaningAndAdvice(t *testing.T) {
	for _, in := range registry {
		if in.Code == "" || in.Meaning == "" || in.Advice == "" || len(in.Sources) == 0 {
			t.Errorf("%q: incomplete registration %+v", in.Code, in)
		}
	}
}

// TestCodesDocIsGenerated fails when docs/reference/codes.md differs from
// the registry: run go generate ./reason.
func TestCodesDocIsGenerated(t *testing.T) {
	b, err := os.ReadFile("../docs/reference/codes.md")
	if err != nil {
		t.Fatalf("%v: run go generate ./reason", err)
	}
	if string(b) != Markdown() {
		t.Fatal("docs/reference/codes.md differs from the reason registry: run go generate ./reason")
	}
}
