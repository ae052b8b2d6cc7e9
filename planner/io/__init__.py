"""What the product reads and writes: records (schema), catalogs, files, plan files, traces, input checks, errors."""
