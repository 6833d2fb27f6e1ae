-- Quote lines say what their quantity counts (`aggregates::quote::Unit`): `LineItemAdded` 1.1
-- carries a unit, and the upcaster reads a 1.0 line as counting pieces, which is what every
-- line projected so far gets here. Null is allowed: a projector of the release before, still
-- running during a rolling upgrade, writes its rows without the column (its lines count
-- pieces too, and GraphQL reads them so).
alter table read.quote_lines add column unit text default 'Piece';
