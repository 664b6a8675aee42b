// The storage account: the app's tables, queues and blob containers (the names in
// shared/storage/clients.py and shared/network/repository.py), the Functions host's own state
// (durable task hub `qcoshub`, created by the host at run time) and the deployment package.
// Reached only with Entra ID: shared keys are off.
param name string
param location string
param tags object
@description('Blob container Flex Consumption deploys the app package to.')
param deploymentContainer string

var appContainers = [
  'circuits'
  'results'
  'evidence'
]
var queueNames = [
  'jobs'
  'jobs-poison'
  'webhook-deliveries'
  'webhook-deliveries-poison'
]
var tableNames = [
  'jobs'
  'users'
  'apikeys'
  'jobstats'
  'quotas'
  'ledger'
  'budgets'
  'idempotency'
  'networkjobs'
  'routing'
  'webhooks'
  'webhookdeliveries'
]

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    accessTier: 'Hot'
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: account
  name: 'default'
}

resource containers 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = [
  for container in concat(appContainers, [deploymentContainer]): {
    parent: blobService
    name: container
    properties: {
      publicAccess: 'None'
    }
  }
]

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: account
  name: 'default'
}

resource queues 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = [
  for queue in queueNames: {
    parent: queueService
    name: queue
  }
]

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: account
  name: 'default'
}

resource tables 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = [
  for table in tableNames: {
    parent: tableService
    name: table
  }
]

output name string = account.name
output blobEndpoint string = account.properties.primaryEndpoints.blob
