-- Fills a migrated tickler SQLite database with 1,000,000 contacts and 5,000,000
-- send-log rows spread over the two years before `bench_now.t` (a temp table that
-- console_pages.py fills), for the console's page benchmark: 80% sent, 12% skipped, the
-- rest failed, and those of the last two days retrying instead.
PRAGMA journal_mode = WAL;
PRAGMA synchronous = OFF;
BEGIN;
CREATE TEMP TABLE names AS
WITH RECURSIVE n(k) AS (SELECT 0 UNION ALL SELECT k + 1 FROM n WHERE k < 199)
SELECT k, json_extract('["Maria","James","Zoe","Daniel","Priya","Olu","Mei","Ingrid","Tomas","Aisha","Noah","Emma","Liam","Sofia","Lucas","Chloe","Mateo","Hana","Omar","Nina"]', '$[' || (k % 20) || ']') AS first,
       json_extract('["Alvarez","Smith","Bronte","OBrien","Nair","Ade","Chen","Berg","Ruiz","Khan","Miller","Rossi","Novak","Kowalski","Tanaka","Dubois","Silva","Jensen","Moreau","Fischer"]', '$[' || (k / 10 % 20) || ']') || (k % 10) AS last FROM n;
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 999999)
INSERT INTO contacts (id, first_name, last_name, email, address_line1, city, region, postal_code,
                      country, tags, digest, armed_at, next_due_at, created_at, updated_at)
SELECT printf('C%07d', i), nm.first, nm.last,
       lower(nm.first || '.' || nm.last || '.' || i || '@example.com'),
       (i % 900 + 1) || ' River St', 'Albany', 'NY', '12207', 'US', 'customer', 'x',
       (SELECT t FROM bench_now) - 86400 * 700,
       (SELECT t FROM bench_now) + (i % 365) * 86400 + i % 86400,
       (SELECT t FROM bench_now) - 86400 * 700, (SELECT t FROM bench_now) - 86400 * 700
FROM n JOIN names nm ON nm.k = n.i % 200;
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 4999999)
INSERT INTO sends (contact_id, cadence, occurrence, channel, status, reason, due_at, attempts,
                   next_attempt_at, message_id, reply, created_at, updated_at)
SELECT printf('C%07d', i % 1000000),
       CASE i % 5 WHEN 0 THEN 'thank-you' WHEN 1 THEN 'check-in' WHEN 2 THEN 'maintenance'
                  WHEN 3 THEN 'birthday' ELSE 'prospect-nudge' END,
       'E' || i,
       CASE i % 5 WHEN 2 THEN 'postcard' ELSE 'email' END,
       CASE WHEN i % 100 < 80 THEN 'sent' WHEN i % 100 < 92 THEN 'skipped'
            WHEN i % 100 < 97 OR i < 4986000 THEN 'failed' ELSE 'retrying' END,
       CASE WHEN i % 100 < 80 THEN NULL WHEN i % 100 < 92 THEN 'opted_out'
            WHEN i % 100 < 97 THEN '550 5.1.1 mailbox unavailable' ELSE '451 4.7.1 try later' END,
       t - 730 * 86400 + i * 63 / 5, 1,
       CASE WHEN i % 100 >= 97 AND i >= 4986000 THEN t + 3600 END,
       '<' || i || '.tickler@example.com>', '250 ok',
       t - 730 * 86400 + i * 63 / 5, t - 730 * 86400 + i * 63 / 5 + 60
FROM n, (SELECT t FROM bench_now);
COMMIT;

