# Release artefacts (docs/release.md): the binaries and every image a run
# deploys, per platform, with release.json and SHA256SUMS, so that
# `idharness run` works from a directory holding only the release.
# Included by the top-level Makefile; needs $(GO) from there.
RELEASE_DIR       ?= _output/release
RELEASE_PLATFORMS ?= linux/amd64,linux/arm64
# Client programs to package (idharness clients list); empty: as run's
# default, every program not built only on request.
CLIENT_IMAGES     ?=
VERSION           ?= $(shell git describe --tags --always --dirty 2>/dev/null)

.PHONY: release release-verify

# The release command is in idharness itself (internal/release), built
# for this machine by idharness-bin (mk/cluster.mk); it builds the
# release's own idharness binaries per platform, with -X main.version.
release: idharness-bin ## build the release in $(RELEASE_DIR): idharness, fakeimds and every image for $(RELEASE_PLATFORMS), release.json, SHA256SUMS
	$(IDHARNESS) release --output $(RELEASE_DIR) --platform $(RELEASE_PLATFORMS) \
	  $(if $(VERSION),--version $(VERSION)) $(if $(CLIENT_IMAGES),--client-images $(CLIENT_IMAGES))

release-verify: idharness-bin ## check the release in $(RELEASE_DIR) against its SHA256SUMS
	$(IDHARNESS) release --verify --output $(RELEASE_DIR)
