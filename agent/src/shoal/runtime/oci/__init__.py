"""The `oci` task driver: OCI bundles run by runc (or crun) under conmon."""
