"""Customer-facing documents: invoices as HTML and PDF, rendered from Jinja2 templates in the
subscription's language and locale (F13). The shell around the engine: it reads templates and
message catalogs, never the database."""
