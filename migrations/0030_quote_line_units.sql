-- Quote lines say what their quantity counts (`aggregates::quote::Unit`): `LineItemAdded` 1.1
-- carries a unit, and the upcaster reads a 1.0 line as counting pieces, which is what every
-- line projected so far gets here.
alter table read.quote_lines add column unit text not null default 'Piece';
