package cluster

import kinddefaults "sigs.k8s.io/kind/pkg/apis/config/defaults"

// kindDefaultImage is the node image kind's library defaults to.
const kindDefaultImage = kinddefaults.Image
