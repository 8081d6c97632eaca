INSERT INTO authorizations (card_number, amount, merchant) VALUES ('4000-0001', 12.5, 'cafe');
INSERT INTO all_orders WITH (QUERY_ID='merge') SELECT * FROM eu_orders WHERE state = 'CREATED' EMIT CHANGES;
