package main

import (
	"fmt"
	"io"

	"github.com/fwagent/fwagent/manifest"
	"github.com/fwagent/fwagent/verify"
)

// noteSecondProof tells the signer, when env carries signatures of fewer
// than two distinct key IDs, which releases of m devices of the protected
// model will refuse for want of a second proof (see docs/security.md).
// The signatures are only counted, not verified: this is advice.
func noteSecondProof(w io.Writer, m *manifest.Manifest, env []byte) {
	e, _, err := manifest.ParseEnvelope(env)
	if err != nil {
		return
	}
	ids := map[string]bool{}
	for _, s := range e.Signatures {
		if s.KeyID != "" {
			ids[s.KeyID] = true
		}
	}
	noteSigners(w, m, len(ids))
}

// noteSigners is noteSecondProof for a known number of distinct signers.
func noteSigners(w io.Writer, m *manifest.Manifest, signers int) {
	if signers >= verify.MinProtectedSigners {
		return
	}
	for _, r := range m.Releases {
		for _, model := range r.Models {
			if verify.IsProtectedModel(model) {
				fmt.Fprintf(w, "note: release %q is for %s and this envelope is signed by %d key(s): devices refuse it (protected_needs_second_proof) unless a second integrator checks the image and co-signs (fwctl sign --key THEIR.key --pub YOUR.pub ENVELOPE), or the devices pin its sha256 %s in policy.pins\n",
					r.ID, verify.ProtectedModel, signers, r.Image.SHA256)
				break
			}
		}
	}
}
