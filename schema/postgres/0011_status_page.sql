-- PostgreSQL form of schema/0011_status_page.sql; keep the two equivalent.
-- No differences.

-- The status page reads an alert's notification history: outbox rows by alert.
CREATE INDEX outbox_alert ON outbox(alert_id);
