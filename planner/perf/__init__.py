"""The performance model: step-time laws, their fit on profiles, the roofline prior, all-reduce and KV hand-off laws."""
