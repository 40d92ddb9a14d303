SYSTEM = "csv"
CONTRACT = "files: CSV (RFC 4180) and XLSX, columns named by the field mappings"
HTTP = False
