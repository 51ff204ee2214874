package conformance

// SpecSetVersion is the version of the conformance spec set: it grows
// when specs are added or a statement changes, and reports carry it, so
// that two reports can be compared spec set to spec set.
const SpecSetVersion = "0.2"

// Since returns the spec set version in which the spec with this ID
// first appeared, and whether the ID is known. A new spec gets an entry
// with the SpecSetVersion it arrives in (raise that first if it is
// released already); `idharness conformance list` refuses a spec
// without one.
func Since(id string) (string, bool) {
	v, ok := since[id]
	return v, ok
}

// SinceIDs returns the IDs with a Since entry, for checks against the
// registered specs.
func SinceIDs() []string {
	out := make([]string, 0, len(since))
	for id := range since {
		out = append(out, id)
	}
	return out
}

var since = map[string]string{
	"IDH-CONF-0001": "0.1",
	"IDH-CONF-0002": "0.1",
	"IDH-CONF-0003": "0.1",
	"IDH-CONF-0004": "0.1",
	"IDH-CONF-0005": "0.1",
	"IDH-CONF-0006": "0.1",
	"IDH-CONF-0007": "0.1",
	"IDH-CONF-0008": "0.1",
	"IDH-CONF-0009": "0.1",
	"IDH-CONF-0010": "0.1",
	"IDH-CONF-0011": "0.1",
	"IDH-CONF-0012": "0.1",
	"IDH-CONF-0013": "0.1",
	"IDH-CONF-0014": "0.1",
	"IDH-CONF-0015": "0.1",
	"IDH-CONF-0016": "0.1",
	"IDH-CONF-0101": "0.1",
	"IDH-CONF-0102": "0.1",
	"IDH-CONF-0103": "0.1",
	"IDH-CONF-0104": "0.1",
	"IDH-CONF-0105": "0.1",
	"IDH-CONF-0106": "0.1",
	"IDH-CONF-0107": "0.1",
	"IDH-CONF-0108": "0.1",
	"IDH-CONF-0109": "0.1",
	"IDH-CONF-0201": "0.1",
	"IDH-CONF-0202": "0.1",
	"IDH-CONF-0203": "0.1",
	"IDH-CONF-0204": "0.1",
	"IDH-CONF-0205": "0.1",
	"IDH-CONF-0206": "0.1",
	"IDH-CONF-0207": "0.1",
	"IDH-CONF-0208": "0.1",
	"IDH-CONF-0209": "0.1",
	"IDH-CONF-0210": "0.1",
	"IDH-CONF-0211": "0.1",
	"IDH-CONF-0212": "0.1",
	"IDH-CONF-0213": "0.1",
	"IDH-CONF-0214": "0.1",
	"IDH-CONF-0215": "0.1",
	"IDH-CONF-0216": "0.1",
	"IDH-CONF-0217": "0.1",
	// 0.2: 0203's AzureIdentity carries clientID and resourceID, as
	// aad-pod-identity documents; 0218 is the misconfigured one; 0104
	// and 0105 judge the projected token by AZURE_FEDERATED_TOKEN_FILE
	// and its audience, not by the reference webhook's mount path.
	"IDH-CONF-0218": "0.2",
}
