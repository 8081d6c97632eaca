SELECT s->f->g, a[1], a[-1], m['k'], ARRAY[1, 2], MAP('a' := 1, 'b' := 2), STRUCT(f1 := 'x', f2 := 2),
  name LIKE '%a\_b' ESCAPE '\', x IS DISTINCT FROM y, x BETWEEN 1 AND 5, x NOT IN (1, 2), 'a' || 'b',
  CASE WHEN x > 1 THEN 'big' ELSE 'small' END, CASE x WHEN 1 THEN 'one' END, DECIMAL '1.23'
FROM s;
SELECT v1->a->b->*, s->*, id FROM input LIMIT 5;
