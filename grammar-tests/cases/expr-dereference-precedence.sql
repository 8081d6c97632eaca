SELECT * FROM s WHERE a->b = 'x' AND c->d->e > 1;
