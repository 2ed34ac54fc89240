-- PostgreSQL form of schema/0010_subject_key.sql; keep the two equivalent.
-- Difference: BLOB is BYTEA. The store's fill of the rows already stored (`fill_subject_keys`)
--   runs after this script in the same transaction, as with SQLite.

-- certvigil store, version 10: certificates found by subject name as RFC 5280 §7.1 compares
-- names, so that a certificate whose issuer name is spelled in another case or string type
-- (or with other spacing, or a multi-valued RDN in another order) still finds its issuer.
--
-- `subject_key` is `x509::name::name_key` of the subject's DER: a canonical encoding of the name
-- after RFC 4518 preparation, equal for two names exactly when they match. It is written with
-- every new certificate; the rows already stored are filled from their DER by the store right
-- after this script, in the same transaction (`fill_subject_keys` in store/mod.rs). NULL when
-- the subject is not a well-formed Name (such a name matches nothing).
ALTER TABLE certificates ADD COLUMN subject_key BYTEA;
CREATE INDEX certificates_subject_key ON certificates(subject_key);
