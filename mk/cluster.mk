# Kind clusters with no container registry (docs/cluster.md).
# Included by the top-level Makefile; needs $(GO) and $(BIN) from there.
GO            ?= go
BIN           ?= bin
IDHARNESS     ?= $(BIN)/idharness
CLUSTER       ?= idharness
# offline: build (or reuse) the offline node image; auto: kind's published
# image when it can be pulled, else offline; or any image name.
NODE_IMAGE    ?= offline
WORKERS       ?= 0
IMAGE_ARCHIVE ?= _output/images/programs.tar
# Go programs packaged as images by `make images` (PACKAGE=IMAGE).
PROGRAMS      ?= ./cmd/fakeimds=idharness.local/fakeimds:dev

.PHONY: prereqs idharness-bin node-image images cluster-up cluster-down cluster-status smoke

prereqs: ## install what make e2e needs if missing (docker.io, mmdebstrap; hack/prereqs.sh) and start Docker for kind
	GO=$(GO) hack/prereqs.sh

# CGO_ENABLED=0, as the image builds: the packages they share compile once.
idharness-bin:
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build -trimpath -o $(IDHARNESS) ./cmd/idharness

node-image: idharness-bin ## build the offline kind node image (cached: seconds when nothing changed)
	$(IDHARNESS) cluster image build

images: idharness-bin ## build images of our Go programs from scratch layers; load them if the cluster exists
	$(IDHARNESS) cluster image programs --output $(IMAGE_ARCHIVE) $(addprefix --program ,$(PROGRAMS)) \
	  $$($(IDHARNESS) cluster status --name $(CLUSTER) >/dev/null 2>&1 && echo --load --name $(CLUSTER))

cluster-up: idharness-bin ## create (or reuse) the kind cluster $(CLUSTER) with $(WORKERS) workers
	$(IDHARNESS) cluster create --name $(CLUSTER) --node-image $(NODE_IMAGE) --workers $(WORKERS)

cluster-down: idharness-bin ## delete the kind cluster $(CLUSTER)
	$(IDHARNESS) cluster delete --name $(CLUSTER)

cluster-status: idharness-bin ## show the cluster's nodes and health
	$(IDHARNESS) cluster status --name $(CLUSTER)

smoke: ## cluster e2e tests: a 2-node cluster (Service, DNS, pod network across nodes, API server, metadata DNAT), Ctrl-C safety
	IDHARNESS_NODE_IMAGE=$(NODE_IMAGE) CGO_ENABLED=0 $(GO) test -tags e2e -count=1 -run 'TestSmoke|TestInterrupt' -v -timeout 40m ./internal/cluster/
