// The PostgreSQL JDBC driver (pgjdbc, Debian's libpostgresql-jdbc-java)
// against Shoal. Run as a single-file program (JDK 11+):
//
//   java -cp /usr/share/java/postgresql.jar compat/jdbc/Check.java
//
// The server comes from PGHOST/PGPORT/PGUSER/PGDATABASE (compat/run sets
// them). Each check prints `PASS name` or `FAIL name: reason`; a failing
// statement is reported with its SQL, SQLSTATE and message. Exit status 1 if
// any check failed.

import java.math.BigDecimal;
import java.sql.Connection;
import java.sql.DatabaseMetaData;
import java.sql.Date;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.sql.Timestamp;
import java.sql.Types;
import java.time.LocalDate;
import java.time.LocalDateTime;
import java.time.OffsetDateTime;
import java.time.ZoneOffset;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.Properties;
import java.util.UUID;

public class Check {
    static int failed = 0;

    interface Body {
        void run(Connection c) throws Exception;
    }

    /** A statement failed: carries the SQL that was sent. */
    static class Sent extends Exception {
        Sent(String sql, SQLException e) {
            super(e.getClass().getSimpleName() + " " + e.getSQLState() + ": " + oneLine(e.getMessage())
                + " [sent: " + oneLine(sql) + "]", e);
        }
    }

    static String oneLine(String s) {
        return s == null ? "null" : s.replaceAll("\\s+", " ").trim();
    }

    static Connection connect() throws SQLException {
        String host = System.getenv().getOrDefault("PGHOST", "127.0.0.1");
        String port = System.getenv("PGPORT");
        String db = System.getenv().getOrDefault("PGDATABASE", "shoal");
        Properties p = new Properties();
        p.setProperty("user", System.getenv().getOrDefault("PGUSER", "shoal"));
        p.setProperty("connectTimeout", "10");
        p.setProperty("socketTimeout", "60");
        p.setProperty("sslmode", "disable");
        // Use server-side prepared statements from the first execution, so the
        // extended protocol's named statements are exercised too.
        p.setProperty("prepareThreshold", "1");
        return DriverManager.getConnection("jdbc:postgresql://" + host + ":" + port + "/" + db, p);
    }

    static void check(String name, Body body) {
        try (Connection c = connect()) {
            body.run(c);
            System.out.println("PASS jdbc " + name);
        } catch (Sent e) {
            fail(name, e.getMessage());
        } catch (SQLException e) {
            StackTraceElement where = null;
            for (StackTraceElement el : e.getStackTrace()) {
                if (el.getClassName().startsWith("Check")) { where = el; break; }
            }
            fail(name, e.getClass().getSimpleName() + " " + e.getSQLState() + ": " + oneLine(e.getMessage())
                + (where != null ? " (at line " + where.getLineNumber() + ")" : ""));
        } catch (AssertionError e) {
            fail(name, e.getMessage());
        } catch (Exception e) {
            fail(name, e.getClass().getSimpleName() + ": " + oneLine(e.getMessage()));
        }
    }

    static void fail(String name, String reason) {
        System.out.println("FAIL jdbc " + name + ": " + reason);
        failed++;
    }

    static void eq(Object got, Object want, String what) {
        if (!Objects.equals(got, want)) {
            throw new AssertionError(what + ": expected " + want + ", got " + got);
        }
    }

    static void exec(Connection c, String sql) throws Sent {
        try (Statement st = c.createStatement()) {
            st.execute(sql);
        } catch (SQLException e) {
            throw new Sent(sql, e);
        }
    }

    static Object scalar(Connection c, String sql) throws Sent {
        try (Statement st = c.createStatement(); ResultSet rs = st.executeQuery(sql)) {
            if (!rs.next()) throw new AssertionError("no row from " + sql);
            return rs.getObject(1);
        } catch (SQLException e) {
            throw new Sent(sql, e);
        }
    }

    public static void main(String[] args) {
        check("connect and server metadata", c -> {
            DatabaseMetaData md = c.getMetaData();
            eq(md.getDatabaseProductName(), "PostgreSQL", "product name");
            if (md.getDatabaseMajorVersion() < 9) throw new AssertionError("server version " + md.getDatabaseProductVersion());
            eq(c.getAutoCommit(), true, "autocommit");
            eq(scalar(c, "SELECT 1"), 1, "SELECT 1");
        });

        check("DDL", c -> {
            exec(c, "DROP TABLE IF EXISTS jdbc_lines");
            exec(c, "DROP TABLE IF EXISTS jdbc_orders");
            exec(c, "CREATE TABLE jdbc_orders ("
                + " id bigint PRIMARY KEY,"
                + " customer varchar(40) NOT NULL,"
                + " total numeric(10,2) NOT NULL DEFAULT 0,"
                + " paid boolean NOT NULL DEFAULT false,"
                + " placed date,"
                + " created timestamp,"
                + " created_tz timestamptz,"
                + " ref uuid,"
                + " ratio double precision,"
                + " blob bytea)");
            exec(c, "CREATE TABLE jdbc_lines ("
                + " order_id bigint NOT NULL REFERENCES jdbc_orders (id),"
                + " line integer NOT NULL,"
                + " item text NOT NULL,"
                + " qty smallint NOT NULL CHECK (qty > 0),"
                + " PRIMARY KEY (order_id, line))");
            exec(c, "CREATE INDEX jdbc_lines_item_idx ON jdbc_lines (item)");
        });

        UUID ref = UUID.fromString("6f1c0a4e-2d3b-4c5d-8e9f-0a1b2c3d4e5f");
        LocalDateTime created = LocalDateTime.of(2024, 3, 1, 12, 30, 45, 123456000);
        OffsetDateTime createdTz = OffsetDateTime.of(2024, 3, 1, 12, 30, 45, 0, ZoneOffset.ofHours(-5));
        byte[] blob = {0, 1, 2, (byte) 0xff, 'x'};

        check("PreparedStatement insert with typed parameters", c -> {
            String sql = "INSERT INTO jdbc_orders (id, customer, total, paid, placed, created, created_tz, ref, ratio, blob)"
                + " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
            try (PreparedStatement ps = c.prepareStatement(sql)) {
                ps.setLong(1, 1L);
                ps.setString(2, "Ann");
                ps.setBigDecimal(3, new BigDecimal("1234.50"));
                ps.setBoolean(4, true);
                ps.setDate(5, Date.valueOf(LocalDate.of(2024, 2, 29)));
                ps.setTimestamp(6, Timestamp.valueOf(created));
                ps.setObject(7, createdTz);
                ps.setObject(8, ref);
                ps.setDouble(9, 0.125);
                ps.setBytes(10, blob);
                eq(ps.executeUpdate(), 1, "update count");
                // Reuse the (now server-prepared) statement, with NULLs.
                ps.setLong(1, 2L);
                ps.setString(2, "Bob");
                ps.setBigDecimal(3, new BigDecimal("0.99"));
                ps.setBoolean(4, false);
                ps.setNull(5, Types.DATE);
                ps.setNull(6, Types.TIMESTAMP);
                ps.setNull(7, Types.TIMESTAMP_WITH_TIMEZONE);
                ps.setNull(8, Types.OTHER);
                ps.setNull(9, Types.DOUBLE);
                ps.setNull(10, Types.BINARY);
                eq(ps.executeUpdate(), 1, "update count");
            } catch (SQLException e) {
                throw new Sent(sql, e);
            }
        });

        check("batch insert (addBatch/executeBatch)", c -> {
            String sql = "INSERT INTO jdbc_lines (order_id, line, item, qty) VALUES (?, ?, ?, ?)";
            try (PreparedStatement ps = c.prepareStatement(sql)) {
                for (int i = 1; i <= 5; i++) {
                    ps.setLong(1, i <= 3 ? 1L : 2L);
                    ps.setInt(2, i);
                    ps.setString(3, "item" + i);
                    ps.setShort(4, (short) i);
                    ps.addBatch();
                }
                int[] counts = ps.executeBatch();
                eq(counts.length, 5, "batch size");
                for (int n : counts) eq(n, 1, "batch update count");
            } catch (SQLException e) {
                throw new Sent(sql, e);
            }
        });

        check("PreparedStatement select with typed results", c -> {
            String sql = "SELECT id, customer, total, paid, placed, created, created_tz, ref, ratio, blob"
                + " FROM jdbc_orders WHERE id = ? AND customer = ?";
            try (PreparedStatement ps = c.prepareStatement(sql)) {
                for (int round = 0; round < 2; round++) {
                    ps.setLong(1, 1L);
                    ps.setString(2, "Ann");
                    try (ResultSet rs = ps.executeQuery()) {
                        if (!rs.next()) throw new AssertionError("no row");
                        eq(rs.getLong("id"), 1L, "id");
                        eq(rs.getString("customer"), "Ann", "customer");
                        eq(rs.getBigDecimal("total").compareTo(new BigDecimal("1234.50")), 0, "total " + rs.getBigDecimal("total"));
                        eq(rs.getBoolean("paid"), true, "paid");
                        eq(rs.getObject("placed", LocalDate.class), LocalDate.of(2024, 2, 29), "placed");
                        eq(rs.getObject("created", LocalDateTime.class), created, "created");
                        eq(rs.getObject("created_tz", OffsetDateTime.class).toInstant(), createdTz.toInstant(), "created_tz");
                        eq(rs.getObject("ref"), ref, "ref");
                        eq(rs.getDouble("ratio"), 0.125, "ratio");
                        eq(java.util.Arrays.toString(rs.getBytes("blob")), java.util.Arrays.toString(blob), "blob");
                        if (rs.next()) throw new AssertionError("more than one row");
                    }
                }
                ps.setLong(1, 2L);
                ps.setString(2, "Bob");
                try (ResultSet rs = ps.executeQuery()) {
                    if (!rs.next()) throw new AssertionError("no row for Bob");
                    rs.getObject("placed");
                    eq(rs.wasNull(), true, "placed is NULL");
                    rs.getBytes("blob");
                    eq(rs.wasNull(), true, "blob is NULL");
                }
            } catch (SQLException e) {
                throw new Sent(sql, e);
            }
        });

        check("ResultSetMetaData column types", c -> {
            String sql = "SELECT id, customer, total, paid, placed, created, created_tz, ref FROM jdbc_orders";
            List<String> got = new ArrayList<>();
            try (Statement st = c.createStatement(); ResultSet rs = st.executeQuery(sql)) {
                var md = rs.getMetaData();
                for (int i = 1; i <= md.getColumnCount(); i++) got.add(md.getColumnName(i) + ":" + md.getColumnTypeName(i));
            } catch (SQLException e) {
                throw new Sent(sql + " (then ResultSetMetaData.getColumnName/getColumnTypeName, for which pgjdbc"
                    + " queries pg_catalog about the result's columns)", e);
            }
            eq(got.toString(), "[id:int8, customer:varchar, total:numeric, paid:bool, placed:date, "
                + "created:timestamp, created_tz:timestamptz, ref:uuid]", "columns");
        });

        check("transaction commit and rollback", c -> {
            c.setAutoCommit(false);
            exec(c, "UPDATE jdbc_orders SET paid = true WHERE id = 2");
            c.rollback();
            eq(scalar(c, "SELECT paid FROM jdbc_orders WHERE id = 2"), false, "after rollback");
            exec(c, "UPDATE jdbc_orders SET total = total + 1 WHERE id = 2");
            var sp = c.setSavepoint("sp1");
            exec(c, "UPDATE jdbc_orders SET total = 0 WHERE id = 2");
            c.rollback(sp);
            c.commit();
            try (Connection other = connect()) {
                eq(((BigDecimal) scalar(other, "SELECT total FROM jdbc_orders WHERE id = 2")).compareTo(new BigDecimal("1.99")), 0,
                    "total seen by another connection");
            }
            // An error aborts the transaction; rollback makes the connection usable.
            try {
                exec(c, "INSERT INTO jdbc_lines (order_id, line, item, qty) VALUES (1, 1, 'dup', 1)");
                throw new AssertionError("duplicate key accepted");
            } catch (Sent e) {
                eq(((SQLException) e.getCause()).getSQLState(), "23505", "sqlstate of the duplicate");
            }
            c.rollback();
            eq(scalar(c, "SELECT count(*) FROM jdbc_lines"), 5L, "lines");
            c.commit();
        });

        check("fetch size (portal suspended and resumed)", c -> {
            c.setAutoCommit(false);  // pgjdbc only uses a cursor inside a transaction
            String sql = "SELECT line, item FROM jdbc_lines ORDER BY line";
            try (PreparedStatement ps = c.prepareStatement(sql)) {
                ps.setFetchSize(2);
                List<Integer> lines = new ArrayList<>();
                try (ResultSet rs = ps.executeQuery()) {
                    while (rs.next()) lines.add(rs.getInt(1));
                }
                eq(lines.toString(), "[1, 2, 3, 4, 5]", "lines");
            } catch (SQLException e) {
                throw new Sent(sql, e);
            }
            c.commit();
        });

        check("DatabaseMetaData.getTables", c -> {
            List<String> names = new ArrayList<>();
            try (ResultSet rs = c.getMetaData().getTables(null, "public", "jdbc_%", new String[] {"TABLE"})) {
                while (rs.next()) names.add(rs.getString("TABLE_SCHEM") + "." + rs.getString("TABLE_NAME") + ":" + rs.getString("TABLE_TYPE"));
            }
            eq(names.toString(), "[public.jdbc_lines:TABLE, public.jdbc_orders:TABLE]", "tables");
        });

        check("DatabaseMetaData.getColumns", c -> {
            List<String> cols = new ArrayList<>();
            try (ResultSet rs = c.getMetaData().getColumns(null, "public", "jdbc_orders", "%")) {
                while (rs.next()) {
                    cols.add(rs.getString("COLUMN_NAME") + ":" + rs.getString("TYPE_NAME") + ":" + rs.getInt("DATA_TYPE")
                        + ":" + rs.getString("IS_NULLABLE"));
                }
            }
            eq(cols.toString(), "[id:int8:" + Types.BIGINT + ":NO, customer:varchar:" + Types.VARCHAR + ":NO, total:numeric:"
                + Types.NUMERIC + ":NO, paid:bool:" + Types.BIT + ":NO, placed:date:" + Types.DATE + ":YES, created:timestamp:"
                + Types.TIMESTAMP + ":YES, created_tz:timestamptz:" + Types.TIMESTAMP + ":YES, ref:uuid:" + Types.OTHER
                + ":YES, ratio:float8:" + Types.DOUBLE + ":YES, blob:bytea:" + Types.BINARY + ":YES]", "columns");
            try (ResultSet rs = c.getMetaData().getColumns(null, "public", "jdbc_orders", "customer")) {
                if (!rs.next()) throw new AssertionError("no customer column");
                eq(rs.getInt("COLUMN_SIZE"), 40, "varchar(40) COLUMN_SIZE");
            }
        });

        check("DatabaseMetaData.getPrimaryKeys", c -> {
            List<String> pk = new ArrayList<>();
            try (ResultSet rs = c.getMetaData().getPrimaryKeys(null, "public", "jdbc_lines")) {
                while (rs.next()) pk.add(rs.getString("COLUMN_NAME") + "@" + rs.getInt("KEY_SEQ"));
            }
            eq(pk.toString(), "[order_id@1, line@2]", "primary key");
        });

        check("DatabaseMetaData.getImportedKeys", c -> {
            List<String> fk = new ArrayList<>();
            try (ResultSet rs = c.getMetaData().getImportedKeys(null, "public", "jdbc_lines")) {
                while (rs.next()) fk.add(rs.getString("FKCOLUMN_NAME") + "->" + rs.getString("PKTABLE_NAME") + "." + rs.getString("PKCOLUMN_NAME"));
            }
            eq(fk.toString(), "[order_id->jdbc_orders.id]", "foreign keys");
        });

        check("DatabaseMetaData.getIndexInfo", c -> {
            List<String> idx = new ArrayList<>();
            try (ResultSet rs = c.getMetaData().getIndexInfo(null, "public", "jdbc_lines", false, false)) {
                while (rs.next()) idx.add(rs.getString("INDEX_NAME") + ":" + rs.getString("COLUMN_NAME"));
            }
            if (!idx.contains("jdbc_lines_item_idx:item")) throw new AssertionError("indexes: " + idx);
        });

        check("cleanup", c -> {
            exec(c, "DROP TABLE jdbc_lines");
            exec(c, "DROP TABLE jdbc_orders");
        });

        System.exit(failed == 0 ? 0 : 1);
    }
}
