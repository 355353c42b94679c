//! Typed rows to Arrow and SQL over them.

use arrow::datatypes::DataType;
use shardcast_queries::{
    batch_from_rows, format_batches, query, schema_of, QueryError, SnapshotStore,
};

use crate::common::{assignments, cells, Assignment};

#[test]
fn schema_follows_the_row_type() {
    let schema = schema_of::<Assignment>().unwrap();
    let described: Vec<(&str, &DataType, bool)> = schema
        .fields()
        .iter()
        .map(|f| (f.name().as_str(), f.data_type(), f.is_nullable()))
        .collect();
    assert_eq!(
        described,
        vec![
            ("customer", &DataType::Utf8, false),
            ("partition", &DataType::UInt64, false),
            ("shift", &DataType::Int64, false),
            ("score", &DataType::Float64, false),
            ("note", &DataType::Utf8, true),
        ]
    );
}

#[test]
fn rows_become_a_batch_with_that_schema() {
    let batch = batch_from_rows(&assignments()).unwrap();
    assert_eq!(batch.num_rows(), 7);
    assert_eq!(batch.schema(), schema_of::<Assignment>().unwrap());
    assert_eq!(
        cells(std::slice::from_ref(&batch))[1],
        vec!["acme", "3", "1", "1.5", "hot"]
    );

    let empty = batch_from_rows::<Assignment>(&[]).unwrap();
    assert_eq!(empty.num_rows(), 0);
    assert_eq!(empty.schema(), batch.schema());
}

#[test]
fn non_struct_rows_are_an_error_not_a_panic() {
    assert!(matches!(schema_of::<u64>(), Err(QueryError::Rows(_))));
}

#[tokio::test]
async fn query_reads_typed_rows() {
    let store = SnapshotStore::new(vec![(
        "assignments".to_owned(),
        schema_of::<Assignment>().unwrap(),
    )]);
    store
        .publish(
            42,
            vec![(
                "assignments".to_owned(),
                batch_from_rows(&assignments()).unwrap(),
            )],
        )
        .unwrap();

    let (epoch, batches) = query(
        &store,
        "SELECT customer, partition, shift, score, note FROM assignments \
         WHERE shift <= 1 ORDER BY partition DESC LIMIT 3",
    )
    .await
    .unwrap();
    assert_eq!(epoch, 42);
    assert_eq!(
        format_batches(&batches),
        "+----------+-----------+-------+-------+-------+\n\
         | customer | partition | shift | score | note  |\n\
         +----------+-----------+-------+-------+-------+\n\
         | globex   | 7         | -2    | 0.25  |       |\n\
         | stark    | 6         | 0     | 0.5   |       |\n\
         | umbrella | 4         | -1    | 0.75  | moved |\n\
         +----------+-----------+-------+-------+-------+"
    );

    let (_, batches) = query(&store, "SELECT epoch FROM shardcast_epoch")
        .await
        .unwrap();
    assert_eq!(cells(&batches), vec![vec!["42"]]);
}
