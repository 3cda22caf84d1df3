"""The Server backend from Blender: the online check and client (online), the remote job (job),
the account view (account), earlier results to reuse (reuse), pending paid jobs in the file
(pending), noticing them on open (notice) and fetching them (fetch)."""
