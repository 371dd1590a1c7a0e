-- Watchlist terms saved from the live dashboard, for the alerting rules to read later.
-- A term is matched case-insensitively, so it is unique by its lower-case form.
CREATE TABLE watchlist_terms (
    term       text NOT NULL CHECK (length(term) BETWEEN 1 AND 200),
    created_at timestamptz NOT NULL DEFAULT now(),
    created_by text NOT NULL DEFAULT 'dashboard',
    active     boolean NOT NULL DEFAULT true
);
CREATE UNIQUE INDEX watchlist_terms_term_key ON watchlist_terms (lower(term));
