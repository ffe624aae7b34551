package verify

import "testing"

func TestSameModel(t *testing.T) {
	tests := []struct {
		name string
		a, b string
		want bool
	}{
		{"identical IDs match", "iDS-9632NXI-I8/16S", "iDS-9632NXI-I8/16S", true},
		{"case differences match", "ids-9632nxi-i8/16s", "IDS-9632NXI-I8/16S", true},
		{"surrounding spaces match", "  iDS-9632NXI-I8/16S\n", "iDS-9632NXI-I8/16S", true},
		{"the /S model is a different model", "iDS-9632NXI-I8/S", "iDS-9632NXI-I8/16S", false},
		{"a longer suffix is not a match", "iDS-9632NXI-I8/16S-X", "iDS-9632NXI-I8/16S", false},
		{"a prefix is not a match", "iDS-9632NXI-I8", "iDS-9632NXI-I8/16S", false},
		{"/X is a different model", "iDS-9632NXI-I8/X", "iDS-9632NXI-I8/16S", false},
		{"/X-AI is a different model", "iDS-9632NXI-I8/X-AI", "iDS-9632NXI-I8/16S", false},
		{"/S(C) is a different model", "iDS-9632NXI-I8/S(C)", "iDS-9632NXI-I8/16S", false},
		{"an empty model matches nothing real", "", "iDS-9632NXI-I8/16S", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := SameModel(tt.a, tt.b); got != tt.want {
				t.Errorf("SameModel(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.want)
			}
		})
	}
}

func TestIsProtectedModel(t *testing.T) {
	for _, m := range []string{"iDS-9632NXI-I8/16S", "IDS-9632NXI-I8/16S ", "iDS-9632NXI-I8 /16S", "iDS-9632NXI-I8/16\u200bS", "i D S-9632NXI-I8/16S"} {
		if !IsProtectedModel(m) {
			t.Errorf("IsProtectedModel(%q) = false, want true", m)
		}
	}
	for _, m := range []string{"iDS-9632NXI-I8/S", "iDS-9632NXI-I8/16S-X", "iDS-9632NXI-I8/X", "iDS-9632NXI-I8/X-AI", "iDS-9632NXI-I8/S(C)", "iDS-9632NXI-I8", ""} {
		if IsProtectedModel(m) {
			t.Errorf("IsProtectedModel(%q) = true, want false", m)
		}
	}
}

func TestParseVariant(t *testing.T) {
	for in, want := range map[string]Variant{"custom": Custom, " Custom ": Custom, "STANDARD": Standard} {
		got, err := ParseVariant(in)
		if err != nil || got != want {
			t.Errorf("ParseVariant(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "customs", "std", "beta"} {
		if _, err := ParseVariant(in); err == nil {
			t.Errorf("ParseVariant(%q) succeeded, want an error", in)
		}
	}
}
