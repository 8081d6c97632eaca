SELECT * FROM riderLocations LIMIT 2.5;
