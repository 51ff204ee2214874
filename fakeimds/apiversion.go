package fakeimds

import "slices"

// KnownAPIVersions are the instance metadata API versions Azure has
// published, oldest first; /metadata/versions lists them.
var KnownAPIVersions = []string{
	"2017-03-01", "2017-04-02", "2017-08-01", "2017-10-01", "2017-12-01",
	"2018-02-01", "2018-04-02", "2018-10-01", "2019-02-01", "2019-03-11",
	"2019-04-30", "2019-06-01", "2019-06-04", "2019-08-01", "2019-08-15",
	"2019-11-01", "2020-06-01", "2020-07-15", "2020-09-01", "2020-10-01",
	"2020-12-01", "2021-01-01", "2021-02-01", "2021-03-01", "2021-05-01",
	"2021-10-01", "2021-11-01", "2021-11-15", "2021-12-13", "2023-07-01",
	"2023-11-15", "2024-03-15", "2025-04-07",
}

// newestVersions returns the three newest known versions, newest first,
// as the real service lists them in a bad-version error.
func newestVersions() []string {
	n := len(KnownAPIVersions)
	return []string{KnownAPIVersions[n-1], KnownAPIVersions[n-2], KnownAPIVersions[n-3]}
}

// supportedVersion reports whether v is one of KnownAPIVersions, exactly,
// and no older than min. Real IMDS matches versions exactly: a well-formed
// date it never published, or a known version with anything after it
// ("2018-02-01-previewX"), is refused, and a fake that accepts them would
// let a client's typo pass.
func supportedVersion(v, min string) bool {
	return v >= min && slices.Contains(KnownAPIVersions, v)
}
