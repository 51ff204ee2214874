# `az login --identity --allow-no-subscriptions [--username ID]`, run by az's own code, with one
# change: the subscription listing (GET https://management.azure.com/subscriptions) answers
# "none". Why: after its IMDS token request, login lists subscriptions from ARM; against the
# fake IMDS that call cannot succeed (offline it fails DNS, four tries; online ARM refuses the
# fake's token), and --allow-no-subscriptions only helps when the list is empty, not when the
# call raises. With an empty list az writes exactly the tenant-level account it writes for
# a real identity without subscriptions; every IMDS request login makes (including the
# client_id → object_id sniff for --username) is az's own.
# Run with the interpreter /usr/bin/az runs (its shebang), like /usr/bin/az itself.
import os
import runpy
import sys

os.environ.setdefault("AZ_INSTALLER", "DEB")  # /usr/bin/az sets this too

from azure.cli.core import _profile  # noqa: E402


def _no_subscriptions(self, tenant, credential):
    self.tenants.append(tenant)  # what the real method records before returning the list
    return []


_profile.SubscriptionFinder.find_using_specific_tenant = _no_subscriptions
sys.argv = ["az", "login", "--identity", "--allow-no-subscriptions"] + sys.argv[1:]
runpy.run_module("azure.cli")
