//! A cap on aliases per document. Depth and complexity do not catch a query that asks for one
//! cheap field under hundreds of names (each a separate lookup), and async-graphql has no alias
//! limit of its own, so this counts them right after parsing, before validation or execution.
use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery};
use async_graphql::parser::types::{
    ExecutableDocument, FragmentDefinition, Selection, SelectionSet,
};
use async_graphql::parser::Positioned;
use async_graphql::{Name, ServerError, ServerResult, Variables};

pub struct AliasLimit(pub usize);

impl ExtensionFactory for AliasLimit {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(AliasLimitExtension(self.0))
    }
}

struct AliasLimitExtension(usize);

#[async_graphql::async_trait::async_trait]
impl Extension for AliasLimitExtension {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        let aliases = aliases_in(&document);
        if aliases > self.0 {
            return Err(ServerError::new(
                format!(
                    "the query uses {aliases} aliases; at most {} are allowed",
                    self.0
                ),
                None,
            ));
        }
        Ok(document)
    }
}

/// Aliases in every operation, a fragment's counted at each spread (so nesting spreads cannot
/// multiply lookups unseen). Each fragment is counted once and remembered, so the count itself
/// stays linear however the spreads nest.
fn aliases_in(document: &ExecutableDocument) -> usize {
    let mut counter = Counter {
        fragments: &document.fragments,
        counted: HashMap::new(),
    };
    document
        .operations
        .iter()
        .map(|(_, operation)| counter.count(&operation.node.selection_set.node))
        .fold(0, usize::saturating_add)
}

struct Counter<'a> {
    fragments: &'a HashMap<Name, Positioned<FragmentDefinition>>,
    counted: HashMap<&'a str, usize>,
}

impl<'a> Counter<'a> {
    fn count(&mut self, selection_set: &'a SelectionSet) -> usize {
        selection_set
            .items
            .iter()
            .map(|item| match &item.node {
                Selection::Field(field) => usize::from(field.node.alias.is_some())
                    .saturating_add(self.count(&field.node.selection_set.node)),
                Selection::InlineFragment(inline) => self.count(&inline.node.selection_set.node),
                Selection::FragmentSpread(spread) => self.fragment(&spread.node.fragment_name.node),
            })
            .fold(0, usize::saturating_add)
    }

    fn fragment(&mut self, name: &'a Name) -> usize {
        if let Some(aliases) = self.counted.get(name.as_str()) {
            return *aliases;
        }
        let Some(definition) = self.fragments.get(name) else {
            return 0;
        };
        // A fragment that spreads itself is refused by validation later; until then it counts
        // as nothing, which ends the recursion.
        self.counted.insert(name.as_str(), 0);
        let aliases = self.count(&definition.node.selection_set.node);
        self.counted.insert(name.as_str(), aliases);
        aliases
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aliases(query: &str) -> usize {
        aliases_in(&async_graphql::parser::parse_query(query).unwrap())
    }

    #[test]
    fn aliases_are_counted_in_operations_fragments_and_nested_selections() {
        assert_eq!(aliases("{ me { userId } }"), 0);
        assert_eq!(aliases("{ a: me { b: userId } c: me { userId } }"), 3);
        assert_eq!(
            aliases(
                "query Q { x: me { ...F ... on Me { y: email } } } fragment F on Me { z: tenant }"
            ),
            3
        );
    }

    #[test]
    fn a_fragment_counts_at_every_spread_and_cycles_end() {
        let nested = "{ me { ...B ...B } } fragment B on Me { ...A ...A ...A } \
            fragment A on Me { a: userId b: email }";
        assert_eq!(aliases(nested), 2 * 3 * 2);
        assert_eq!(
            aliases("{ me { ...C } } fragment C on Me { x: userId ...C }"),
            1
        );
    }
}
