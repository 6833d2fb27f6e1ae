//! A cap on aliases per document. Depth and complexity do not catch a query that asks for one
//! cheap field under hundreds of names (each a separate lookup), and async-graphql has no alias
//! limit of its own, so this counts them right after parsing, before validation or execution.
use std::sync::Arc;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery};
use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{ServerError, ServerResult, Variables};

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

/// Aliases as written, in every operation and fragment of the document.
fn aliases_in(document: &ExecutableDocument) -> usize {
    let operations = document
        .operations
        .iter()
        .map(|(_, operation)| count(&operation.node.selection_set.node));
    let fragments = document
        .fragments
        .values()
        .map(|fragment| count(&fragment.node.selection_set.node));
    operations.chain(fragments).sum()
}

fn count(selection_set: &SelectionSet) -> usize {
    selection_set
        .items
        .iter()
        .map(|item| match &item.node {
            Selection::Field(field) => {
                usize::from(field.node.alias.is_some()) + count(&field.node.selection_set.node)
            }
            Selection::InlineFragment(inline) => count(&inline.node.selection_set.node),
            Selection::FragmentSpread(_) => 0,
        })
        .sum()
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
}
