-- The talk's form: no window type means tumbling.
SELECT card_number, COUNT(*) FROM authorizations WINDOW (SIZE 5 MINUTE) GROUP BY card_number;
