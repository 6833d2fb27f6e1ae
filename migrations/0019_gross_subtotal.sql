-- A quote's subtotal is the gross sum of quantity × unit price (DOMAIN.md). Rows written while
-- it was net of the line discounts satisfy `subtotal - quote_discount = total` with non-zero
-- line discounts, which a gross subtotal never does: those, and only those, get the gross.
-- (The events they came from keep their version 1.0; readers upcast them.)
update read.quotes
   set subtotal = subtotal + line_discounts
 where line_discounts <> 0
   and subtotal - quote_discount = total;
