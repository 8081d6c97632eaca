SELECT TRANSFORM(arr, x => x + 1) AS a, REDUCE(arr, 0, (s, x) => s + x) AS b,
  TRANSFORM(m, (k, v) => UCASE(k), (k, v) => FILTER(v, z => z < 5)) AS c FROM s EMIT CHANGES;
